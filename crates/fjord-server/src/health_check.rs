//! `fjord health`: one HTTP/1.1 GET of a node's `/healthz` or `/readyz`,
//! for a container HEALTHCHECK in an image without a shell or curl.
//!
//! Plain HTTP over a TCP socket (`Connection: close`, the response read to
//! its end), so no HTTP client library is needed; the whole exchange is
//! bounded by one timeout.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response larger than this is not a Fjord probe answer.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("{url:?} is not an http://HOST:PORT[/PATH] URL")]
    Url { url: String },
    #[error("cannot reach {target}")]
    Io {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer from {target} within {timeout:?}")]
    Timeout { target: String, timeout: Duration },
    #[error("{target} did not answer HTTP: {first_line:?}")]
    NotHttp { target: String, first_line: String },
    #[error("{target} answered {status}: {body}")]
    Status {
        target: String,
        status: u16,
        body: String,
    },
}

/// Where to send the GET: `host:port` and the path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub authority: String,
    pub path: String,
}

impl Target {
    /// Parses `http://HOST:PORT/PATH` (`http://` and the path optional:
    /// `default_path` then).
    pub fn parse(url: &str, default_path: &str) -> Result<Target, HealthError> {
        let bad = || HealthError::Url { url: url.into() };
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some(_) => return Err(bad()),
            None => url,
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, default_path),
        };
        let (host, port) = authority.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        Ok(Target {
            authority: authority.to_string(),
            path: path.to_string(),
        })
    }

    /// The probe URL for a node's `http_addr`: a wildcard bind address
    /// (`0.0.0.0`, `[::]`) is probed on loopback.
    pub fn for_http_addr(http_addr: &str, path: &str) -> Result<Target, HealthError> {
        let authority = match http_addr.rsplit_once(':') {
            Some(("0.0.0.0", port)) => format!("127.0.0.1:{port}"),
            Some(("[::]", port)) => format!("[::1]:{port}"),
            _ => http_addr.to_string(),
        };
        Target::parse(&authority, path)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

/// GETs `target`; `Ok(body)` on 200, else why not.
pub async fn get(target: &Target, timeout: Duration) -> Result<String, HealthError> {
    match tokio::time::timeout(timeout, exchange(target)).await {
        Ok(result) => result,
        Err(_) => Err(HealthError::Timeout {
            target: target.to_string(),
            timeout,
        }),
    }
}

async fn exchange(target: &Target) -> Result<String, HealthError> {
    let io = |source| HealthError::Io {
        target: target.to_string(),
        source,
    };
    let mut stream = TcpStream::connect(&target.authority).await.map_err(io)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: fjord-health\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    );
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut response = Vec::new();
    (&mut stream)
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut response)
        .await
        .map_err(io)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let first_line = head.lines().next().unwrap_or_default();
    let status = first_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| HealthError::NotHttp {
            target: target.to_string(),
            first_line: first_line.to_string(),
        })?;
    let body = body.trim().to_string();
    if status == 200 {
        Ok(body)
    } else {
        Err(HealthError::Status {
            target: target.to_string(),
            status,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_http_addrs() {
        let t = Target::parse("http://127.0.0.1:9644/readyz", "/healthz").unwrap();
        assert_eq!(
            (t.authority.as_str(), t.path.as_str()),
            ("127.0.0.1:9644", "/readyz")
        );
        let t = Target::parse("fjord-0:9644", "/healthz").unwrap();
        assert_eq!(t.to_string(), "http://fjord-0:9644/healthz");
        for bad in ["https://h:1/", "nohost", ":9644", "h:port", "ftp://h:1"] {
            assert!(Target::parse(bad, "/").is_err(), "{bad}");
        }
        let t = Target::for_http_addr("0.0.0.0:9644", "/readyz").unwrap();
        assert_eq!(t.to_string(), "http://127.0.0.1:9644/readyz");
        let t = Target::for_http_addr("[::]:9644", "/healthz").unwrap();
        assert_eq!(t.authority, "[::1]:9644");
    }

    /// Against a one-shot server: the status line decides, the body is kept.
    #[tokio::test]
    async fn status_lines_decide() {
        for (answer, ok) in [
            ("HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n", true),
            (
                "HTTP/1.1 503 Service Unavailable\r\n\r\nnot ready: x\n",
                false,
            ),
            ("SSH-2.0-OpenSSH\r\n", false),
        ] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await.unwrap();
                s.write_all(answer.as_bytes()).await.unwrap();
            });
            let target = Target::parse(&addr.to_string(), "/healthz").unwrap();
            let got = get(&target, Duration::from_secs(5)).await;
            assert_eq!(got.is_ok(), ok, "{answer:?}: {got:?}");
            server.await.unwrap();
        }
        // A closed port fails fast.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let target = Target::parse(&format!("127.0.0.1:{port}"), "/healthz").unwrap();
        assert!(matches!(
            get(&target, Duration::from_secs(5)).await,
            Err(HealthError::Io { .. })
        ));
    }
}
