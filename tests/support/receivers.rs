//! Receivers of alerts, started by the tests: a syslog socket (a Unix datagram socket), a
//! webhook (an HTTP/1 server on loopback), an SMTP server (plain, STARTTLS or TLS, with
//! AUTH PLAIN); each keeps what it received. And dead ones: bound, but they never answer.
//! Every task ends when its receiver drops.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::{
    io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader},
    net::{TcpListener, UnixDatagram},
    task::JoinHandle,
};

use super::{secure::Certificates, wait::expect};

/// Aborts a receiver's task when it drops.
struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a receiver kept, shared with its task.
type Kept<T> = Arc<Mutex<Vec<T>>>;

fn kept<T: Clone>(kept: &Kept<T>) -> Vec<T> {
    kept.lock().unwrap().clone()
}

/// Waits until what `kept` holds satisfies `check`; returns it then.
async fn wait_kept<T: Clone>(kept: &Kept<T>, what: &str, check: impl Fn(&[T]) -> bool) -> Vec<T> {
    expect(what, || {
        let now = self::kept(kept);
        let holds = check(&now);
        async move { holds.then_some(now) }
    })
    .await
}

/// A syslog daemon's socket: every datagram it receives, as text.
pub struct Syslog {
    pub path: PathBuf,
    messages: Kept<String>,
    _task: Task,
}

impl Syslog {
    /// Binds `path` and reads it until dropped.
    pub fn bind(path: &Path) -> Syslog {
        let socket = UnixDatagram::bind(path).expect("bind the syslog socket");
        let messages: Kept<String> = Arc::default();
        let kept = messages.clone();
        let task = tokio::spawn(async move {
            let mut buffer = vec![0; 65_536];
            while let Ok(length) = socket.recv(&mut buffer).await {
                let text = String::from_utf8_lossy(&buffer[..length]).into_owned();
                kept.lock().unwrap().push(text);
            }
        });
        Syslog {
            path: path.to_path_buf(),
            messages,
            _task: Task(task),
        }
    }

    pub fn messages(&self) -> Vec<String> {
        kept(&self.messages)
    }

    /// Waits until the messages satisfy `check`.
    pub async fn wait(&self, what: &str, check: impl Fn(&[String]) -> bool) -> Vec<String> {
        wait_kept(&self.messages, what, check).await
    }
}

/// A syslog socket nobody reads, its queue full from the start: a send to it waits forever.
pub struct DeadSyslog {
    pub path: PathBuf,
    _socket: std::os::unix::net::UnixDatagram,
}

impl DeadSyslog {
    pub fn bind(path: &Path) -> DeadSyslog {
        let socket = std::os::unix::net::UnixDatagram::bind(path).expect("bind");
        let filler = std::os::unix::net::UnixDatagram::unbound().unwrap();
        filler.set_nonblocking(true).unwrap();
        // Until the receiver's queue takes no more.
        while filler.send_to(b"filler", path).is_ok() {}
        DeadSyslog {
            path: path.to_path_buf(),
            _socket: socket,
        }
    }
}

/// One request a webhook received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: serde_json::Value,
}

/// An HTTP server on loopback that answers 200 to every request (after failing the first
/// ones if told to), and keeps them.
pub struct Webhook {
    /// `http://127.0.0.1:PORT/alerts`.
    pub url: String,
    requests: Kept<Request>,
    _task: Task,
}

impl Webhook {
    pub async fn start() -> Webhook {
        Webhook::failing_first(0).await
    }

    /// A webhook that answers 503 to its first `failures` requests.
    pub async fn failing_first(failures: usize) -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/alerts", listener.local_addr().unwrap());
        let requests: Kept<Request> = Arc::default();
        let kept = requests.clone();
        let answered = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (kept, answered) = (kept.clone(), answered.clone());
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let (kept, answered) = (kept.clone(), answered.clone());
                        async move {
                            let (parts, body) = http::Request::into_parts(request);
                            let bytes = body.collect().await?.to_bytes();
                            kept.lock().unwrap().push(Request {
                                method: parts.method.to_string(),
                                path: parts.uri.to_string(),
                                headers: parts.headers,
                                body: serde_json::from_slice(&bytes).unwrap_or_default(),
                            });
                            let status = match answered.fetch_add(1, Ordering::SeqCst) < failures {
                                true => 503,
                                false => 200,
                            };
                            let response = http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::new()))
                                .unwrap();
                            Ok::<_, hyper::Error>(response)
                        }
                    },
                );
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Webhook {
            url,
            requests,
            _task: Task(task),
        }
    }

    pub fn requests(&self) -> Vec<Request> {
        kept(&self.requests)
    }

    /// Waits until the requests satisfy `check`.
    pub async fn wait(&self, what: &str, check: impl Fn(&[Request]) -> bool) -> Vec<Request> {
        wait_kept(&self.requests, what, check).await
    }
}

/// A TCP port that takes connections (in the kernel's backlog) and never says a word: a
/// webhook or SMTP server that hangs.
pub struct Silent {
    pub port: u16,
    _listener: std::net::TcpListener,
}

impl Silent {
    pub fn bind() -> Silent {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Silent {
            port: listener.local_addr().unwrap().port(),
            _listener: listener,
        }
    }
}

/// One mail an SMTP server received.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Who logged in.
    pub user: Option<String>,
    /// Whether the session was encrypted when the mail came.
    pub tls: bool,
    /// The message, headers and body, as sent.
    pub data: String,
}

/// How an SMTP server speaks.
pub enum SmtpSecurity {
    /// Plain text, offering STARTTLS (with the certificate of `localhost`).
    StartTls,
    /// TLS from the first byte.
    Tls,
}

/// An SMTP server on loopback that takes every mail from a client that logs in as `user`
/// with `password` (AUTH PLAIN), in TLS.
pub struct Smtp {
    pub port: u16,
    mails: Kept<Mail>,
    _task: Task,
}

/// A stream a session runs on: plain TCP, or TLS over it.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Smtp {
    pub async fn start(
        security: SmtpSecurity,
        certificates: &Certificates,
        user: &str,
        password: &str,
    ) -> Smtp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = acceptor(certificates);
        let mails: Kept<Mail> = Arc::default();
        let kept = mails.clone();
        let login = (user.to_string(), password.to_string());
        let implicit = matches!(security, SmtpSecurity::Tls);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (kept, login, acceptor) = (kept.clone(), login.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let stream: Box<dyn Io> = match implicit {
                        true => match acceptor.accept(stream).await {
                            Ok(tls) => Box::new(tls),
                            Err(_) => return,
                        },
                        false => Box::new(stream),
                    };
                    let _ = session(stream, implicit, acceptor, &login, &kept).await;
                });
            }
        });
        Smtp {
            port,
            mails,
            _task: Task(task),
        }
    }

    pub fn mails(&self) -> Vec<Mail> {
        kept(&self.mails)
    }

    /// Waits until the mails satisfy `check`.
    pub async fn wait(&self, what: &str, check: impl Fn(&[Mail]) -> bool) -> Vec<Mail> {
        wait_kept(&self.mails, what, check).await
    }
}

fn acceptor(certificates: &Certificates) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let chain = CertificateDer::pem_slice_iter(certificates.server_cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(certificates.server_key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// One SMTP session: EHLO, STARTTLS (when not `tls` yet), AUTH PLAIN, MAIL, RCPT, DATA, QUIT.
async fn session(
    stream: Box<dyn Io>,
    mut tls: bool,
    acceptor: tokio_rustls::TlsAcceptor,
    (user, password): &(String, String),
    kept: &Kept<Mail>,
) -> std::io::Result<()> {
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(b"220 localhost test SMTP\r\n")
        .await?;
    let mut logged_in = None;
    let mut from = String::new();
    let mut to = Vec::new();
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            let starttls = if tls { "" } else { "250-STARTTLS\r\n" };
            format!("250-localhost\r\n{starttls}250-AUTH PLAIN\r\n250 8BITMIME\r\n")
        } else if upper == "STARTTLS" && !tls {
            stream.get_mut().write_all(b"220 go ahead\r\n").await?;
            let plain = stream.into_inner();
            let secured: Box<dyn Io> = Box::new(acceptor.accept(plain).await?);
            stream = BufReader::new(secured);
            tls = true;
            continue;
        } else if let Some(encoded) = upper.strip_prefix("AUTH PLAIN") {
            let encoded = match encoded.trim() {
                "" => {
                    stream.get_mut().write_all(b"334 \r\n").await?;
                    let mut next = String::new();
                    stream.read_line(&mut next).await?;
                    next.trim().to_string()
                }
                _ => line["AUTH PLAIN".len()..].trim().to_string(),
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap_or_default();
            let parts: Vec<&[u8]> = decoded.split(|byte| *byte == 0).collect();
            if tls
                && parts.len() == 3
                && parts[1] == user.as_bytes()
                && parts[2] == password.as_bytes()
            {
                logged_in = Some(user.clone());
                "235 authenticated\r\n".into()
            } else {
                "535 bad credentials\r\n".into()
            }
        } else if upper.starts_with("MAIL FROM:") {
            if logged_in.is_none() {
                "530 log in first\r\n".into()
            } else {
                from = line["MAIL FROM:".len()..].to_string();
                to.clear();
                "250 ok\r\n".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            to.push(line["RCPT TO:".len()..].to_string());
            "250 ok\r\n".into()
        } else if upper == "DATA" {
            stream.get_mut().write_all(b"354 go on\r\n").await?;
            let mut data = String::new();
            loop {
                let mut next = String::new();
                if stream.read_line(&mut next).await? == 0 {
                    return Ok(());
                }
                if next == ".\r\n" {
                    break;
                }
                data.push_str(next.strip_prefix('.').unwrap_or(&next));
            }
            kept.lock().unwrap().push(Mail {
                from: from.clone(),
                to: to.clone(),
                user: logged_in.clone(),
                tls,
                data,
            });
            "250 queued\r\n".into()
        } else if upper == "QUIT" {
            stream.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            "250 ok\r\n".into()
        } else {
            "502 not here\r\n".into()
        };
        stream.get_mut().write_all(reply.as_bytes()).await?;
    }
}
