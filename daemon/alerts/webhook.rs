//! The webhook sink: an HTTP/1.1 POST of the alert's JSON per alert, over TLS for `https`
//! (rustls with ring, the system's roots or the sink's `ca`), on a connection of its own.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::alert::{Alert, Origin};
use crate::config::alerts::WebhookConfig;

pub struct Webhook {
    config: WebhookConfig,
    /// `Host`: the host (an IPv6 address in brackets), and the port unless it is the scheme's.
    authority: String,
    /// The headers of every request, the configured ones with their secrets.
    headers: http::HeaderMap,
    /// For `https`: the client's TLS config and the name the certificate must carry.
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    origin: Origin,
}

impl Webhook {
    /// Reads the CA file or the system's roots: on a blocking thread.
    pub fn new(config: &WebhookConfig, origin: &Origin) -> Result<Webhook, String> {
        let host = if config.host.contains(':') {
            format!("[{}]", config.host)
        } else {
            config.host.clone()
        };
        let default_port = if config.tls { 443 } else { 80 };
        let authority = match config.port {
            port if port == default_port => host,
            port => format!("{host}:{port}"),
        };
        let mut headers = http::HeaderMap::new();
        for header in &config.headers {
            let name = http::HeaderName::from_bytes(header.name.as_bytes())
                .map_err(|error| format!("header {}: {error}", header.name))?;
            let value = http::HeaderValue::from_str(&header.value.text())
                .map_err(|_| format!("the value of header {} cannot be sent", header.name))?;
            headers.append(name, value);
        }
        let tls = match config.tls {
            true => Some(tls(config)?),
            false => None,
        };
        Ok(Webhook {
            config: config.clone(),
            authority,
            headers,
            tls,
            origin: origin.clone(),
        })
    }

    /// POSTs `alert`; any answer but 2xx is a failure.
    pub async fn post(&self, alert: &Alert) -> Result<(), String> {
        let body = serde_json::to_vec(&alert.json(&self.origin))
            .map_err(|error| format!("cannot write the alert as JSON: {error}"))?;
        let address = (self.config.host.as_str(), self.config.port);
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|error| format!("cannot connect to {}: {error}", self.authority))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|error| format!("no TLS with {}: {error}", self.authority))?;
                self.exchange(stream, body).await
            }
            None => self.exchange(tcp, body).await,
        }
    }

    /// One request and its answer's status on `stream`.
    async fn exchange<S>(&self, stream: S, body: Vec<u8>) -> Result<(), String>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let failed = |error: hyper::Error| format!("POST to {}: {error}", self.config.url);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(failed)?;
        let mut request = http::Request::post(&self.config.path)
            .header(HOST, &self.authority)
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("taskmasterd/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| format!("POST to {}: {error}", self.config.url))?;
        request.headers_mut().extend(self.headers.clone());
        // The connection is driven beside the request, and ends with it.
        tokio::pin!(connection);
        let answer = tokio::select! {
            answer = sender.send_request(request) => answer.map_err(failed)?,
            ended = &mut connection => {
                ended.map_err(failed)?;
                return Err(format!("{} closed the connection without an answer", self.authority));
            }
        };
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("{} answered {status}", self.config.url))
        }
    }
}

/// The TLS side for `config`: its CA, or the system's roots.
fn tls(
    config: &WebhookConfig,
) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), String> {
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca {
        Some(path) => {
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                .map_err(|error| format!("cannot read the CA file {}: {error}", path.display()))?;
            roots.add_parsable_certificates(certificates);
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(config.host.clone())
        .map_err(|_| format!("{} cannot be checked against a certificate", config.host))?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(client)), name))
}
