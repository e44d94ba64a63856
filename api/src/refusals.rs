//! Requests the HTTP/1 parser refuses (a 100 KB path, a NUL or invalid UTF-8 in the request
//! line, 200 headers, a head that never ends) answered like every other error: `{"error": ...}`
//! JSON, logged at WARN.
//!
//! actix-http answers those itself, before any of the app runs, with an empty 400, 431 or 408
//! and an ERROR log line, and has no hook to change either. So every connection's bytes pass
//! through a [`CheckedStream`] first, which decodes a copy of them with actix-http's own codec
//! (the same code and limits, so the same verdicts) and hands the dispatcher only bytes the codec
//! accepted. On a refusal the dispatcher is told the client stopped sending: it answers the
//! requests before the bad one, then closes the connection, and that is when the stream writes
//! its JSON answer and closes.
//!
//! The stream also bounds the time every request head may take ([`HEAD_TIMEOUT`], from the
//! connection's start or the head's first byte): actix-http bounds the first one only.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use actix_codec::{AsyncRead, AsyncWrite, Decoder, ReadBuf};
use actix_http::error::ParseError;
use actix_http::h1::{Codec, Message, MessageType};
use actix_http::StatusCode;
use actix_web::web::{Buf, Bytes, BytesMut};
use tokio::time::{sleep, Sleep};

use crate::error::ErrorBody;

/// Longest a request head may take to arrive, from the connection's start for the first one
/// and from its first byte for the next ones (actix's default for the first).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 16 * 1024;

/// Most bytes read and dropped after a refusal, so that closing does not reset the connection
/// before the client has read the answer.
const DRAIN_LIMIT: usize = 256 * 1024;

/// A TCP connection whose incoming bytes are checked by actix-http's decoder before the
/// dispatcher sees them (see the module doc).
///
/// Memory: one read (16 KiB) plus two copies of at most one unfinished request head, which the
/// decoder refuses past 128 KiB (431), as it does in the dispatcher.
pub struct CheckedStream<S> {
    io: S,
    peer: Option<SocketAddr>,
    /// Decodes the copy, as the dispatcher's codec will decode the bytes handed over.
    codec: Codec,
    /// Bytes from the client not yet handed to the dispatcher; the first `accepted` of them are
    /// decoded.
    incoming: BytesMut,
    accepted: usize,
    /// A copy of `incoming[accepted..]`, consumed by `codec` as it decodes.
    undecoded: BytesMut,
    /// Whether the next bytes are a request head (not a body).
    expecting_head: bool,
    /// When the head being received must be complete.
    head_deadline: Option<Pin<Box<Sleep>>>,
    client_closed: bool,
    refusal: Option<Refusal>,
}

/// The answer to a refused request, and how far writing it and closing have got.
struct Refusal {
    response: Bytes,
    written: usize,
    write_closed: bool,
    drained: usize,
}

impl<S> CheckedStream<S> {
    /// Wraps a new connection from `peer`; `codec` must be configured as the dispatcher's.
    pub fn new(io: S, peer: Option<SocketAddr>, codec: Codec) -> CheckedStream<S> {
        CheckedStream {
            io,
            peer,
            codec,
            incoming: BytesMut::new(),
            accepted: 0,
            undecoded: BytesMut::new(),
            expecting_head: true,
            head_deadline: Some(Box::pin(sleep(HEAD_TIMEOUT))),
            client_closed: false,
            refusal: None,
        }
    }

    /// Decodes what was read; sets `accepted`, the head deadline, or a refusal.
    fn decode(&mut self) {
        loop {
            // Where the message being decoded starts: on an error the codec may have taken
            // some of its bytes already.
            let unaccepted = self.undecoded.len();
            match self.codec.decode(&mut self.undecoded) {
                Ok(Some(Message::Item(_))) => {
                    self.head_deadline = None;
                    self.expecting_head = self.codec.message_type() == MessageType::None;
                }
                Ok(Some(Message::Chunk(Some(_)))) => {}
                Ok(Some(Message::Chunk(None))) => self.expecting_head = true,
                Ok(None) => break,
                Err(error) => {
                    self.accepted = self.incoming.len() - unaccepted;
                    self.refuse(refusal_of(&error));
                    return;
                }
            }
        }
        self.accepted = self.incoming.len() - self.undecoded.len();
        if self.expecting_head && !self.undecoded.is_empty() && self.head_deadline.is_none() {
            // The first bytes of the next head: it has `HEAD_TIMEOUT` to be complete.
            self.head_deadline = Some(Box::pin(sleep(HEAD_TIMEOUT)));
        }
    }

    /// Stops reading: the dispatcher gets the first `accepted` bytes, then an end of stream;
    /// the JSON answer with `status` and `message` is written when it closes the connection.
    fn refuse(&mut self, (status, message): (StatusCode, String)) {
        let peer = self
            .peer
            .map_or_else(|| "?".to_string(), |peer| peer.to_string());
        log::warn!(
            "refused a request from {peer}: {}: {message}",
            status.as_u16()
        );
        self.incoming.truncate(self.accepted);
        self.undecoded = BytesMut::new();
        self.head_deadline = None;
        self.refusal = Some(Refusal {
            response: json_response(status, message),
            written: 0,
            write_closed: false,
            drained: 0,
        });
    }
}

/// The status and message for a request the decoder refused, as the dispatcher would answer
/// it (431 for a head too large, else 400), but in words.
fn refusal_of(error: &ParseError) -> (StatusCode, String) {
    match error {
        ParseError::TooLarge => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request head too large: at most 96 headers and 128 KiB".to_string(),
        ),
        // httparse's verdict on any bad token of the request line or the headers.
        ParseError::Header => (
            StatusCode::BAD_REQUEST,
            "malformed HTTP request: invalid request line or header".to_string(),
        ),
        other => (
            StatusCode::BAD_REQUEST,
            format!("malformed HTTP request: {other}"),
        ),
    }
}

/// A complete HTTP/1.1 response with a `{"error": message}` body, closing the connection.
fn json_response(status: StatusCode, message: String) -> Bytes {
    let body = serde_json::to_string(&ErrorBody { error: message })
        .unwrap_or_else(|_| r#"{"error":"bad request"}"#.to_string());
    Bytes::from(format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         x-content-type-options: nosniff\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
    ))
}

impl<S: AsyncRead + Unpin> AsyncRead for CheckedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.accepted > 0 {
                let n = this.accepted.min(out.remaining());
                out.put_slice(&this.incoming[..n]);
                this.incoming.advance(n);
                this.accepted -= n;
                return Poll::Ready(Ok(()));
            }
            if this.refusal.is_some() || this.client_closed {
                // End of stream; bytes of an unfinished request are never handed over.
                return Poll::Ready(Ok(()));
            }
            let expired = this
                .head_deadline
                .as_mut()
                .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
            if expired {
                this.refuse((
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "request head not received within {} s",
                        HEAD_TIMEOUT.as_secs()
                    ),
                ));
                continue;
            }
            let read_from = this.incoming.len();
            this.incoming.reserve(READ_SIZE);
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.io), cx, &mut this.incoming) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(0)) => this.client_closed = true,
                Poll::Ready(Ok(_)) => {
                    this.undecoded
                        .extend_from_slice(&this.incoming[read_from..]);
                    this.decode();
                }
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for CheckedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, bytes)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buffers: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    /// The dispatcher is done: write the refusal's answer, if any, then close.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut io = Pin::new(&mut this.io);
        let Some(refusal) = this.refusal.as_mut() else {
            return io.poll_shutdown(cx);
        };
        while refusal.written < refusal.response.len() {
            let n = ready!(io
                .as_mut()
                .poll_write(cx, &refusal.response[refusal.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            refusal.written += n;
        }
        if !refusal.write_closed {
            ready!(io.as_mut().poll_flush(cx))?;
            ready!(io.as_mut().poll_shutdown(cx))?;
            refusal.write_closed = true;
        }
        // Wait for the client to close, reading what it still sends: closing a socket with
        // unread bytes resets the connection, which can destroy the answer before it is read.
        // The dispatcher stops waiting after its disconnect timeout.
        let mut scratch = [0u8; 4096];
        while refusal.drained < DRAIN_LIMIT {
            let mut buffer = ReadBuf::new(&mut scratch);
            match io.as_mut().poll_read(cx, &mut buffer) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => break,
                Poll::Ready(Ok(())) if buffer.filled().is_empty() => break,
                Poll::Ready(Ok(())) => refusal.drained += buffer.filled().len(),
            }
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_complete_json_responses() {
        let response = json_response(StatusCode::BAD_REQUEST, "a \"quoted\" reason".into());
        let text = std::str::from_utf8(&response).expect("ASCII");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        assert_eq!(
            head,
            format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\nx-content-type-options: nosniff\r\nconnection: close",
                body.len()
            )
        );
        assert_eq!(body, r#"{"error":"a \"quoted\" reason"}"#);
    }

    #[test]
    fn statuses_follow_the_dispatcher() {
        assert_eq!(refusal_of(&ParseError::TooLarge).0.as_u16(), 431);
        assert_eq!(refusal_of(&ParseError::Header).0.as_u16(), 400);
        assert_eq!(
            refusal_of(&ParseError::Method).1,
            "malformed HTTP request: invalid method specified"
        );
    }
}
