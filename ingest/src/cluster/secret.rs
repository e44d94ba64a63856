//! The cluster's shared secret (`--cluster-secret-file`) and the challenge-response by which two
//! processes prove to each other that they know it, before anything else crosses their
//! connection.
//!
//! On a new connection the accepting process sends a random nonce, the only thing it sends
//! before the connecting process has proven the secret. The connecting process answers with its
//! own nonce and HMAC-SHA-256(secret, "dialer" role || its nonce || the acceptor's nonce); the
//! accepting process checks it in constant time, drops the connection if it is wrong or late,
//! and otherwise proves the secret in turn with HMAC-SHA-256(secret, "acceptor" role || its
//! nonce || the dialer's nonce), which the connecting process checks before it sends its
//! `Hello` (`connect.rs`). Each proof covers a fresh nonce of the other side, so neither
//! can be replayed; the roles differ, so neither can be reflected back. Reads are of fixed
//! sizes and bounded by a deadline. The proofs authenticate the connection's start only: the
//! traffic after them is neither encrypted nor authenticated.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Instant;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The fewest bytes a secret may have (after trailing whitespace is trimmed).
pub const MIN_SECRET_BYTES: usize = 16;

/// The most bytes read from a secret file: a secret is one short line.
const MAX_SECRET_FILE_BYTES: u64 = 64 << 10;

/// Bytes of each side's random nonce.
pub(crate) const NONCE_BYTES: usize = 32;

/// Bytes of a proof (an HMAC-SHA-256 tag).
const PROOF_BYTES: usize = 32;

/// What the connecting process's proof covers before the nonces.
const DIALER: &[u8] = b"logstats-cluster 1 dialer";

/// What the accepting process's proof covers before the nonces.
const ACCEPTOR: &[u8] = b"logstats-cluster 1 acceptor";

/// The secret every process of a cluster is started with, kept as the HMAC key it is used
/// as. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct ClusterSecret {
    key: Hmac<Sha256>,
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

/// Why a secret file cannot be used. No message shows any byte of the file.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be opened or read.
    #[error("cannot read the cluster secret file {}: {cause}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: io::Error,
    },
    /// The secret is too short to resist guessing.
    #[error(
        "the cluster secret file {path} holds fewer than {MIN_SECRET_BYTES} bytes (after \
         trailing whitespace); make one with `head -c 32 /dev/urandom | base64 > {path}`",
        path = path.display()
    )]
    TooShort {
        /// The file.
        path: PathBuf,
    },
    /// The file is larger than a secret ever needs to be.
    #[error(
        "the cluster secret file {} is larger than {} KiB: it should hold one line, the secret",
        path.display(),
        MAX_SECRET_FILE_BYTES >> 10
    )]
    TooLong {
        /// The file.
        path: PathBuf,
    },
}

impl ClusterSecret {
    /// The secret `bytes`, trailing whitespace (a newline) trimmed; `None` when fewer than
    /// [`MIN_SECRET_BYTES`] remain.
    pub fn new(bytes: &[u8]) -> Option<ClusterSecret> {
        let bytes = bytes.trim_ascii_end();
        if bytes.len() < MIN_SECRET_BYTES {
            return None;
        }
        // HMAC takes a key of any length: this does not fail.
        let key = Hmac::<Sha256>::new_from_slice(bytes).ok()?;
        Some(ClusterSecret { key })
    }

    /// The secret in the file at `path` (`--cluster-secret-file`).
    pub fn from_file(path: &Path) -> Result<ClusterSecret, SecretError> {
        let unreadable = |cause| SecretError::Unreadable {
            path: path.to_path_buf(),
            cause,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_SECRET_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(unreadable)?;
        if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
            return Err(SecretError::TooLong {
                path: path.to_path_buf(),
            });
        }
        ClusterSecret::new(&bytes).ok_or_else(|| SecretError::TooShort {
            path: path.to_path_buf(),
        })
    }

    /// The proof of the side playing `role` over its nonce `own` and the other side's `peer`.
    fn proof(&self, role: &[u8], own: &[u8], peer: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.key.clone();
        mac.update(role);
        mac.update(own);
        mac.update(peer);
        mac
    }
}

/// Why a connection was not authenticated.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    /// The other side's proof is wrong: it does not know the secret.
    #[error("its proof of the cluster secret is wrong")]
    WrongProof,
    /// The other side closed the connection before it was done.
    #[error("it closed the connection")]
    Closed,
    /// The other side did not send its part before the deadline.
    #[error("it did not send its part in time")]
    TimedOut,
    /// The connection failed otherwise.
    #[error("{0}")]
    Io(io::Error),
    /// The OS gave no random bytes for a nonce.
    #[error("no random bytes for a nonce: {0}")]
    Random(getrandom::Error),
}

impl From<io::Error> for AuthError {
    fn from(error: io::Error) -> Self {
        match error.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => AuthError::Closed,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => AuthError::TimedOut,
            _ => AuthError::Io(error),
        }
    }
}

/// A fresh random nonce.
fn nonce() -> Result<[u8; NONCE_BYTES], AuthError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(AuthError::Random)?;
    Ok(nonce)
}

/// The accepting side: sends a nonce, then reads the connecting side's nonce and proof, and
/// only if the proof is right, sends its own. Nothing is read past them.
pub(crate) fn authenticate_dialer(
    stream: &mut TcpStream,
    secret: &ClusterSecret,
    deadline: Instant,
) -> Result<(), AuthError> {
    let ours = nonce()?;
    write_by(stream, &ours, deadline)?;
    let mut answer = [0u8; NONCE_BYTES + PROOF_BYTES];
    read_exact_by(stream, &mut answer, deadline)?;
    let (theirs, proof) = answer.split_at(NONCE_BYTES);
    secret
        .proof(DIALER, theirs, &ours)
        .verify_slice(proof)
        .map_err(|_| AuthError::WrongProof)?;
    let mine = secret
        .proof(ACCEPTOR, &ours, theirs)
        .finalize()
        .into_bytes();
    write_by(stream, &mine, deadline)?;
    Ok(())
}

/// The connecting side: reads the accepting side's nonce, sends its own nonce and proof, then
/// reads and checks the accepting side's proof. Nothing is read past it.
pub(crate) fn authenticate_acceptor(
    stream: &mut TcpStream,
    secret: &ClusterSecret,
    deadline: Instant,
) -> Result<(), AuthError> {
    let mut theirs = [0u8; NONCE_BYTES];
    read_exact_by(stream, &mut theirs, deadline)?;
    let ours = nonce()?;
    let mine = secret.proof(DIALER, &ours, &theirs).finalize().into_bytes();
    let mut answer = [0u8; NONCE_BYTES + PROOF_BYTES];
    answer[..NONCE_BYTES].copy_from_slice(&ours);
    answer[NONCE_BYTES..].copy_from_slice(&mine);
    write_by(stream, &answer, deadline)?;
    let mut proof = [0u8; PROOF_BYTES];
    read_exact_by(stream, &mut proof, deadline)?;
    secret
        .proof(ACCEPTOR, &theirs, &ours)
        .verify_slice(&proof)
        .map_err(|_| AuthError::WrongProof)
}

/// The time left before `deadline`, or a timeout when none is.
fn remaining(deadline: Instant) -> Result<std::time::Duration, AuthError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(AuthError::TimedOut);
    }
    Ok(left)
}

/// Fills `buf` from `stream` by `deadline`, however the bytes are spread over time.
fn read_exact_by(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<(), AuthError> {
    let mut filled = 0;
    while filled < buf.len() {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => return Err(AuthError::Closed),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Writes all of `bytes` to `stream` by `deadline`.
fn write_by(stream: &mut TcpStream, bytes: &[u8], deadline: Instant) -> Result<(), AuthError> {
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    stream.write_all(bytes)?;
    stream.flush()?;
    stream.set_write_timeout(None)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    fn secret(text: &str) -> ClusterSecret {
        ClusterSecret::new(text.as_bytes()).expect("long enough")
    }

    /// Runs the accepting side with `acceptor` and the connecting side with `dialer` on one
    /// local connection; both results.
    fn exchange(
        acceptor: &ClusterSecret,
        dialer: &ClusterSecret,
    ) -> (Result<(), AuthError>, Result<(), AuthError>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let address = listener.local_addr().expect("address");
        let deadline = Instant::now() + Duration::from_secs(5);
        std::thread::scope(|scope| {
            let accepting = scope.spawn(|| {
                let (mut stream, _) = listener.accept().expect("accept");
                authenticate_dialer(&mut stream, acceptor, deadline)
            });
            let mut stream = TcpStream::connect(address).expect("connect");
            let dialed = authenticate_acceptor(&mut stream, dialer, deadline);
            drop(stream);
            (accepting.join().expect("thread"), dialed)
        })
    }

    #[test]
    fn the_same_secret_authenticates_both_sides() {
        let (accepted, dialed) = exchange(
            &secret("0123456789abcdef0123\n"),
            &secret("0123456789abcdef0123"),
        );
        accepted.expect("the acceptor accepts");
        dialed.expect("the dialer accepts");
    }

    #[test]
    fn a_wrong_secret_is_refused_and_gets_no_proof() {
        let (accepted, dialed) = exchange(
            &secret("0123456789abcdef0123"),
            &secret("0123456789abcdef0124"),
        );
        assert!(
            matches!(accepted, Err(AuthError::WrongProof)),
            "{accepted:?}"
        );
        // The acceptor sent nothing after its nonce: the dialer sees the connection closed.
        assert!(matches!(dialed, Err(AuthError::Closed)), "{dialed:?}");
    }

    #[test]
    fn secrets_are_trimmed_checked_for_length_and_never_shown() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("secret");
        std::fs::write(&path, "s3cr3t-s3cr3t-s3cr3t \n\n").expect("write");
        let read = ClusterSecret::from_file(&path).expect("valid");
        assert_eq!(format!("{read:?}"), "ClusterSecret(..)");
        let (accepted, dialed) = exchange(&read, &secret("s3cr3t-s3cr3t-s3cr3t"));
        assert!(
            accepted.is_ok() && dialed.is_ok(),
            "{accepted:?} {dialed:?}"
        );

        std::fs::write(&path, "short-secret-15\n\n").expect("write");
        let short = ClusterSecret::from_file(&path).unwrap_err().to_string();
        assert!(short.contains("holds fewer than 16 bytes"), "{short}");
        assert!(
            short.contains("head -c 32 /dev/urandom | base64"),
            "{short}"
        );
        assert!(!short.contains("short-secret"), "{short}");

        std::fs::write(&path, vec![b'x'; 70 << 10]).expect("write");
        let long = ClusterSecret::from_file(&path).unwrap_err().to_string();
        assert!(long.contains("larger than 64 KiB"), "{long}");
        assert!(!long.contains("xxxxxxxx"), "{long}");

        let missing = ClusterSecret::from_file(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("cannot read the cluster secret file"),
            "{missing}"
        );
    }
}
