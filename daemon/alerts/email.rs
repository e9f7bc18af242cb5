//! The email sink: SMTP with TLS or STARTTLS and a login, through lettre's blocking transport
//! on a blocking thread (its socket operations bounded by the sink's timeout); one mail per
//! alert, or one per digest interval listing each alert of it.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Message, SmtpTransport, Transport};

use super::alert::{Alert, Origin};
use super::sink::MAX_BATCH;
use crate::config::alerts::{EmailConfig, SmtpSecurity};

pub struct Email {
    transport: SmtpTransport,
    from: Mailbox,
    to: Vec<Mailbox>,
    origin: Origin,
}

impl Email {
    /// Reads the CA file or the system's roots: on a blocking thread.
    pub fn new(config: &EmailConfig, timeout: Duration, origin: &Origin) -> Result<Email, String> {
        let mailbox = |text: &str| {
            (text.parse::<Mailbox>()).map_err(|error| format!("mailbox {text:?}: {error}"))
        };
        let mut builder = SmtpTransport::builder_dangerous(&config.server)
            .port(config.port)
            .timeout(Some(timeout))
            .hello_name(ClientId::Domain(origin.host.to_string()));
        let tls = || -> Result<TlsParameters, String> {
            let mut parameters = TlsParameters::builder(config.server.clone());
            if let Some(path) = &config.ca {
                let pem = std::fs::read(path).map_err(|error| {
                    format!("cannot read the CA file {}: {error}", path.display())
                })?;
                let certificate = Certificate::from_pem(&pem)
                    .map_err(|error| format!("the CA file {}: {error}", path.display()))?;
                parameters = parameters
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(certificate);
            }
            parameters.build().map_err(|error| format!("TLS: {error}"))
        };
        builder = builder.tls(match config.security {
            SmtpSecurity::Tls => Tls::Wrapper(tls()?),
            SmtpSecurity::StartTls => Tls::Required(tls()?),
            SmtpSecurity::None => Tls::None,
        });
        if let (Some(user), Some((password, _))) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        Ok(Email {
            transport: builder.build(),
            from: mailbox(&config.from)?,
            to: config
                .to
                .iter()
                .map(|to| mailbox(to))
                .collect::<Result<_, _>>()?,
            origin: origin.clone(),
        })
    }

    /// Sends one mail: of the one alert of `batch`, or a digest of all of them.
    pub async fn send(&self, batch: &[Arc<Alert>]) -> Result<(), String> {
        let (subject, body) = match batch {
            [alert] => (alert.subject(&self.origin), alert.text(&self.origin)),
            _ => self.digest(batch),
        };
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .body(body)
            .map_err(|error| format!("cannot write the mail: {error}"))?;
        let transport = self.transport.clone();
        let sent = tokio::task::spawn_blocking(move || transport.send(&message)).await;
        match sent {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(format!("SMTP: {error}")),
            Err(error) => Err(format!("sending the mail failed: {error}")),
        }
    }

    /// The subject and text of a digest of `batch`: a line for each alert (the first
    /// [`MAX_BATCH`], and how many more), then each in full.
    fn digest(&self, batch: &[Arc<Alert>]) -> (String, String) {
        let count: u64 = batch.iter().map(|alert| alert.count()).sum();
        let subject = format!("[taskmaster {}] {count} alerts", self.origin.host);
        let mut text = String::new();
        for alert in batch.iter().take(MAX_BATCH) {
            let _ = writeln!(text, "- [{}] {}", alert.rule, alert.summary());
        }
        if batch.len() > MAX_BATCH {
            let _ = writeln!(text, "- and {} more", batch.len() - MAX_BATCH);
        }
        for alert in batch.iter().take(MAX_BATCH) {
            let _ = write!(text, "\n----\n{}", alert.text(&self.origin));
        }
        (subject, text)
    }
}
