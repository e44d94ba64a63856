//! The hostfile of a cluster: one `host:port` a line, in the order of the processes (timely's
//! convention), with blank lines and `#` comments allowed.

/// Why a hostfile was refused; the message names the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostfileError {
    /// A line that is not `host:port`.
    #[error("line {line}: {text:?} is not HOST:PORT (e.g. 10.0.0.2:2101 or [fd00::2]:2101)")]
    NotAnAddress {
        /// 1-based line number.
        line: usize,
        /// The line, trimmed.
        text: String,
    },
    /// The same address twice: two processes cannot listen on one port.
    #[error(
        "line {line}: {address} is already on line {first}; each process needs its own host:port"
    )]
    Repeated {
        /// 1-based line number.
        line: usize,
        /// The address.
        address: String,
        /// The line it was first on.
        first: usize,
    },
    /// No address at all.
    #[error("no host:port line in it")]
    Empty,
}

/// The addresses of `text`, in order: process `i` listens on the `i`-th.
pub fn parse(text: &str) -> Result<Vec<String>, HostfileError> {
    let mut addresses: Vec<(usize, String)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let text = raw.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        if !is_host_port(text) {
            return Err(HostfileError::NotAnAddress {
                line,
                text: text.chars().take(100).collect(),
            });
        }
        if let Some((first, _)) = addresses.iter().find(|(_, a)| a == text) {
            return Err(HostfileError::Repeated {
                line,
                address: text.to_string(),
                first: *first,
            });
        }
        addresses.push((line, text.to_string()));
    }
    if addresses.is_empty() {
        return Err(HostfileError::Empty);
    }
    Ok(addresses.into_iter().map(|(_, a)| a).collect())
}

/// Whether `text` is `host:port`: a host name, an IPv4 address or a bracketed IPv6 address,
/// and a port from 1 to 65535.
fn is_host_port(text: &str) -> bool {
    let Some((host, port)) = text.rsplit_once(':') else {
        return false;
    };
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        None => {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
        }
    };
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_order_without_blanks_and_comments() {
        let text = "# the cluster\n\n10.0.0.1:2101\n  ingest-1:2101  \n[::1]:2102\r\n";
        assert_eq!(
            parse(text),
            Ok(vec![
                "10.0.0.1:2101".to_string(),
                "ingest-1:2101".to_string(),
                "[::1]:2102".to_string()
            ])
        );
    }

    #[test]
    fn a_bad_line_is_named() {
        for (text, bad_line) in [
            ("a:1\nb\n", 2),
            ("a:1\nb:0\n", 2),
            ("a:70000\n", 1),
            ("a:1\n\nb:x\n", 3),
            (":2101\n", 1),
            ("a b:2101\n", 1),
            ("::1:2101\n", 1),
            ("[zz]:2101\n", 1),
            ("a:+1\n", 1),
        ] {
            match parse(text) {
                Err(HostfileError::NotAnAddress { line, .. }) => {
                    assert_eq!(line, bad_line, "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_compose_clusters_hostfile_is_valid() {
        let hosts = parse(include_str!("../../../compose/cluster/hosts")).expect("valid");
        assert_eq!(hosts, ["ingest:2101", "ingest-1:2101"]);
    }

    #[test]
    fn repeated_and_empty_files_are_refused() {
        assert_eq!(
            parse("a:1\nb:1\na:1\n"),
            Err(HostfileError::Repeated {
                line: 3,
                address: "a:1".to_string(),
                first: 1
            })
        );
        assert_eq!(parse("# nothing\n\n"), Err(HostfileError::Empty));
        let message = parse("a:1\nnope\n").unwrap_err().to_string();
        assert!(
            message.starts_with("line 2: \"nope\" is not HOST:PORT"),
            "{message}"
        );
    }
}
