//! Clients that prove who they are: a bearer token in every call's metadata, TLS with the
//! test's CA, a client certificate; and certificates made for a test.

use taskmaster::proto::taskmaster_client::TaskmasterClient;
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity},
};

/// Adds `authorization: Bearer TOKEN` to every call; `None` adds nothing.
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    pub fn new(token: Option<&str>) -> Bearer {
        Bearer(token.map(|token| format!("Bearer {token}").parse().expect("a token is ASCII")))
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A Taskmaster client whose calls carry a token (or none).
pub type TokenClient = TaskmasterClient<InterceptedService<Channel, Bearer>>;

/// A client on `channel` sending `token`.
pub fn with_token(channel: Channel, token: Option<&str>) -> TokenClient {
    TaskmasterClient::with_interceptor(channel, Bearer::new(token))
}

/// A plain-text channel to `127.0.0.1:port`.
pub async fn tcp_channel(port: u16) -> Channel {
    Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("connect over TCP")
}

/// A TLS channel to `localhost:port` that trusts `ca` (PEM) and shows `identity` (certificate
/// and key, PEM) if given.
pub async fn tls_channel(
    port: u16,
    ca: &str,
    identity: Option<(&str, &str)>,
) -> Result<Channel, tonic::transport::Error> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://localhost:{port}"))
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await
}

/// A CA and certificates it signed, all PEM.
pub struct Certificates {
    /// The CA's certificate.
    pub ca: String,
    /// For `localhost` and 127.0.0.1.
    pub server_cert: String,
    /// The server certificate's key.
    pub server_key: String,
    /// A client certificate with subject `CN=ops,O=Taskmaster tests`.
    pub client_cert: String,
    /// The client certificate's key.
    pub client_key: String,
}

impl Certificates {
    /// Writes the daemon's files into `dir`: `ca.pem`, `server.pem` and `server.key` (private,
    /// as the daemon wants it).
    pub fn write_server_files(&self, dir: &std::path::Path) {
        super::write_file(dir, "ca.pem", &self.ca, 0o644);
        super::write_file(dir, "server.pem", &self.server_cert, 0o644);
        super::write_file(dir, "server.key", &self.server_key, 0o600);
    }

    /// A daemon with one sleeper listening on `address` (`PORT` or `HOST:PORT`) with mutual
    /// TLS: a client must show a certificate of this CA.
    pub async fn mutual_tls_daemon(&self, address: &str) -> super::Daemon {
        let dir = tempfile::tempdir().unwrap();
        self.write_server_files(dir.path());
        let config = super::Config::from(super::Program::sleeper("sleeper")).daemon(&format!(
            "listen: {address}\ntls: {{cert: server.pem, key: server.key, client_ca: ca.pem}}\n"
        ));
        super::Daemon::launch(config).in_dir(dir).start().await
    }

    /// A TLS channel to `localhost:port` that shows this CA's client certificate.
    pub async fn client_channel(&self, port: u16) -> Channel {
        let identity = (self.client_cert.as_str(), self.client_key.as_str());
        tls_channel(port, &self.ca, Some(identity)).await.unwrap()
    }

    /// A new CA, with a server and a client certificate.
    pub fn new() -> Certificates {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
            ExtendedKeyUsagePurpose, IsCa, KeyPair,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        (ca_params.distinguished_name).push(DnType::CommonName, "Taskmaster test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let signed = |names: Vec<String>, common_name: Option<&str>, purpose| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.extended_key_usages = vec![purpose];
            if let Some(name) = common_name {
                params.distinguished_name = DistinguishedName::new();
                (params.distinguished_name).push(DnType::OrganizationName, "Taskmaster tests");
                params.distinguished_name.push(DnType::CommonName, name);
            }
            let cert = params.signed_by(&key, &ca).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = signed(
            vec!["localhost".into(), "127.0.0.1".into()],
            None,
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) =
            signed(vec![], Some("ops"), ExtendedKeyUsagePurpose::ClientAuth);
        Certificates {
            ca: ca.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }
}
