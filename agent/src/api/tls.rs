//! Mutual TLS for the Peers API: the node's certificate and the CAs it trusts, read from
//! `--peer-tls-dir` and read again when the files change (a rotated certificate is used from
//! the next connection on); the server side's accept loop, which lets in only connections from
//! known peers' addresses, a bounded number of them, each finishing its handshake in time; and
//! the client side's connector, which calls from this node's underlay address and checks that
//! the far end's certificate names the node it meant to call.
//!
//! Certificates are made with `ovswire-agent pki` ([`crate::pki`]). TLS 1.3 only.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures::Stream;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tonic::transport::server::Connected;
use tracing::{debug, info, warn};

use super::limits::{FIRST_BYTES_WITHIN, Limited};
use crate::error::Error;
use crate::pki::{CA_CERT, NODE_CERT, NODE_KEY, check_private};

/// How often the certificate files are checked for a change.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);
/// A certificate closer than this to its end is warned about at every load and once a day.
const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);
/// How long a connection has to finish its TLS handshake.
pub const HANDSHAKE_WITHIN: Duration = FIRST_BYTES_WITHIN;
/// Connections at once from one peer's address (its agent needs one).
pub const PER_PEER_CONNECTIONS: usize = 16;

/// What identifies the three files: a change of any makes them be read again.
type Stamp = Vec<(u64, u64, i64, i64)>;

/// The node's TLS identity for the Peers API, current as of the last change of its files.
pub struct PeerTls {
    dir: PathBuf,
    node: String,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<Loaded>>,
    /// Counts loads: clients made before a reload are made again.
    version: AtomicU64,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerTls")
            .field("dir", &self.dir)
            .field("node", &self.node)
            .field("not_after", &self.not_after())
            .finish_non_exhaustive()
    }
}

struct Loaded {
    stamp: Stamp,
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    not_after: SystemTime,
}

impl PeerTls {
    /// Reads node `node`'s identity from `dir` (`ca.crt`, `tls.crt`, `tls.key`), refusing a
    /// certificate that is not the node's, not issued by a CA of `ca.crt`, not valid now, or
    /// whose key file others may read.
    pub fn load(dir: &Path, node: &str) -> Result<Arc<Self>, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = read(dir, node, &provider)?;
        info!(dir = %dir.display(), not_after = %show_time(loaded.not_after), "peer certificate loaded");
        warn_if_expiring(loaded.not_after);
        Ok(Arc::new(Self {
            dir: dir.to_owned(),
            node: node.to_owned(),
            provider,
            current: RwLock::new(Arc::new(loaded)),
            version: AtomicU64::new(0),
        }))
    }

    fn loaded(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The server side's configuration as of now.
    pub fn server(&self) -> Arc<ServerConfig> {
        self.loaded().server.clone()
    }

    /// The client side's configuration as of now.
    pub fn client(&self) -> Arc<ClientConfig> {
        self.loaded().client.clone()
    }

    /// How many times the files were read again since the start.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// When the current certificate stops being valid.
    pub fn not_after(&self) -> SystemTime {
        self.loaded().not_after
    }

    /// Reads the files again whenever they change, every [`RELOAD_EVERY`]; a change that does
    /// not make a valid identity is logged and the current one kept. Runs until the process
    /// ends.
    pub async fn watch(self: Arc<Self>) {
        let mut refused: Option<Stamp> = None;
        let mut warned = SystemTime::now();
        loop {
            tokio::time::sleep(RELOAD_EVERY).await;
            let stamp = stamp(&self.dir);
            if stamp == self.loaded().stamp || Some(&stamp) == refused.as_ref() {
                if warned.elapsed().unwrap_or_default() > Duration::from_secs(86_400) {
                    warned = SystemTime::now();
                    warn_if_expiring(self.not_after());
                }
                continue;
            }
            match read(&self.dir, &self.node, &self.provider) {
                Ok(loaded) => {
                    info!(
                        not_after = %show_time(loaded.not_after),
                        "peer certificate files changed; new connections use them"
                    );
                    warn_if_expiring(loaded.not_after);
                    *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
                    self.version.fetch_add(1, Ordering::Relaxed);
                    refused = None;
                }
                Err(e) => {
                    warn!(error = %e, "peer certificate files changed but cannot be used; the current ones stay");
                    refused = Some(stamp);
                }
            }
        }
    }
}

fn show_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute()))
        .unwrap_or_else(|_| secs.to_string())
}

fn warn_if_expiring(not_after: SystemTime) {
    let left = not_after
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    if left < EXPIRY_WARNING {
        warn!(
            not_after = %show_time(not_after),
            "the peer certificate expires in {} days; issue a new one with `ovswire-agent pki issue`",
            left.as_secs() / 86_400
        );
    }
}

fn stamp(dir: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    [CA_CERT, NODE_CERT, NODE_KEY]
        .iter()
        .map(|name| {
            std::fs::metadata(dir.join(name))
                .map(|m| (m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
                .unwrap_or_default()
        })
        .collect()
}

fn read(dir: &Path, node: &str, provider: &Arc<CryptoProvider>) -> Result<Loaded, Error> {
    let stamp = stamp(dir);
    let file = |name: &str| dir.join(name);
    let bad = |name: &str, why: String| {
        Error::Config(format!(
            "{}: {why}; make the node's files with `ovswire-agent pki issue --ca CA_DIR --node \
             {node} --out {}`",
            file(name).display(),
            dir.display()
        ))
    };
    let certs = |name: &str| -> Result<Vec<CertificateDer<'static>>, Error> {
        let certs = CertificateDer::pem_file_iter(file(name))
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(name, format!("cannot read certificates ({e})")))?;
        if certs.is_empty() {
            return Err(bad(name, "holds no certificate".into()));
        }
        Ok(certs)
    };
    let cas = certs(CA_CERT)?;
    let mut roots = RootCertStore::empty();
    for ca in cas {
        roots
            .add(ca)
            .map_err(|e| bad(CA_CERT, format!("holds a certificate that is no CA ({e})")))?;
    }
    let roots = Arc::new(roots);
    let chain = certs(NODE_CERT)?;
    check_private(&file(NODE_KEY))?;
    let key = PrivateKeyDer::from_pem_file(file(NODE_KEY))
        .map_err(|e| bad(NODE_KEY, format!("cannot read a private key ({e})")))?;

    let name = ServerName::try_from(node.to_owned())
        .map_err(|_| Error::Config(format!("node name {node:?} cannot be a certificate's name")))?;
    let server_verifier =
        WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| bad(CA_CERT, e.to_string()))?;
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| bad(CA_CERT, e.to_string()))?;
    let now = UnixTime::now();
    server_verifier
        .verify_server_cert(&chain[0], &chain[1..], &name, &[], now)
        .map(drop)
        .and_then(|()| {
            client_verifier
                .verify_client_cert(&chain[0], &chain[1..], now)
                .map(drop)
        })
        .map_err(|e| bad(NODE_CERT, certificate_problem(&e, node)))?;

    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| bad(NODE_KEY, format!("does not match {NODE_CERT} ({e})")))?;
    let mut server = server;
    server.alpn_protocols = vec![b"h2".to_vec()];
    let mut client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain.clone(), key)
        .map_err(|e| bad(NODE_KEY, format!("does not match {NODE_CERT} ({e})")))?;
    client.alpn_protocols = vec![b"h2".to_vec()];
    let not_after = x509_parser::parse_x509_certificate(&chain[0])
        .map(|(_, c)| c.validity().not_after.timestamp())
        .map_err(|e| bad(NODE_CERT, format!("cannot be parsed ({e})")))?;
    Ok(Loaded {
        stamp,
        server: Arc::new(server),
        client: Arc::new(client),
        not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(not_after.max(0) as u64),
    })
}

/// What is wrong with a node's own certificate, in words.
fn certificate_problem(e: &rustls::Error, node: &str) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "the certificate has expired".into()
        }
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "the certificate is not valid yet (is the clock right?)".into()
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => format!("the certificate is not node {node}'s (its name must be {node})"),
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            format!("the certificate was not issued by a CA of {CA_CERT}")
        }
        other => format!("the certificate cannot be used ({other})"),
    }
}

/// Whether `cert` (DER) names node `node`: what a peer's certificate must say for the node it
/// speaks for. The chain was verified in the handshake.
pub fn names_node(cert: &CertificateDer<'_>, node: &str) -> bool {
    let Ok(name) = ServerName::try_from(node) else {
        return false;
    };
    webpki::EndEntityCert::try_from(cert)
        .and_then(|c| c.verify_is_valid_for_subject_name(&name))
        .is_ok()
}

/// Who is at the far end of a Peers connection: its address, and the certificate it showed.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The connection's source.
    pub remote: SocketAddr,
    /// The end-entity certificate the handshake verified.
    pub certificate: Option<CertificateDer<'static>>,
}

/// A Peers connection after its handshake.
#[derive(Debug)]
pub struct PeerConn {
    stream: tokio_rustls::server::TlsStream<Limited>,
    info: PeerInfo,
}

impl Connected for PeerConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for PeerConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

super::limits::delegate_write!(PeerConn, stream);

/// Which sources may connect, and how many connections each holds.
pub type Admit = Arc<dyn Fn(IpAddr) -> bool + Send + Sync>;

/// One connection's count against its source address.
#[derive(Debug)]
struct SourceSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl SourceSlot {
    fn take(counts: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<Self> {
        let mut all = counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = all.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Self {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut all = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = all.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                all.remove(&self.ip);
            }
        }
    }
}

/// The Peers connections of `listener` after their handshake: a connection from an address
/// `admit` refuses is closed at once, unread; at most `max` are open at once and
/// [`PER_PEER_CONNECTIONS`] from one address (the next are closed at once); a handshake must end
/// within [`HANDSHAKE_WITHIN`]. Handshakes run side by side, so a slow one delays no other.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<PeerTls>,
    admit: Admit,
    max: usize,
) -> impl Stream<Item = io::Result<PeerConn>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(max));
        let sources = Arc::new(Mutex::new(HashMap::new()));
        let mut strangers = 0u64;
        loop {
            let (stream, from) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, most likely: wait for some to close.
                        warn!(error = %e, "peers: cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let ip = from.ip().to_canonical();
            if !admit(ip) {
                strangers += 1;
                // Logged once, then every 1000th: a flood must not flood the log too.
                if strangers % 1000 == 1 {
                    warn!(%from, refused = strangers, "peers: closed a connection from an address that is no peer's");
                }
                continue;
            }
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                warn!(%from, max, "peers: too many connections; closed a new one");
                continue;
            };
            let Some(source) = SourceSlot::take(&sources, ip, PER_PEER_CONNECTIONS) else {
                warn!(%from, max = PER_PEER_CONNECTIONS, "peers: too many connections from one address; closed a new one");
                continue;
            };
            let acceptor = TlsAcceptor::from(tls.server());
            let tx = tx.clone();
            tokio::spawn(async move {
                let limited = Limited::new(stream, slot).holding(source);
                match tokio::time::timeout(HANDSHAKE_WITHIN, acceptor.accept(limited)).await {
                    Ok(Ok(stream)) => {
                        let certificate = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| c.clone().into_owned());
                        let info = PeerInfo {
                            remote: from,
                            certificate,
                        };
                        let _ = tx.send(Ok(PeerConn { stream, info })).await;
                    }
                    Ok(Err(e)) => warn!(%from, error = %e, "peers: TLS handshake failed"),
                    Err(_) => debug!(%from, "peers: no TLS handshake in time; closed"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Dials a peer's Peers API: TCP from this node's underlay address, then TLS checking that
/// the far certificate names `node`.
#[derive(Debug, Clone)]
pub struct Dial {
    tls: Arc<PeerTls>,
    node: ServerName<'static>,
    to: SocketAddr,
    from: Option<IpAddr>,
    timeout: Duration,
}

impl Dial {
    /// A connector to node `node` at `to`, from `from` when given, each connection made within
    /// `timeout`.
    pub fn new(
        tls: Arc<PeerTls>,
        node: &str,
        to: SocketAddr,
        from: Option<IpAddr>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let node = ServerName::try_from(node.to_owned()).map_err(|_| {
            Error::Config(format!("node name {node:?} cannot be a certificate's name"))
        })?;
        Ok(Self {
            tls,
            node,
            to,
            from,
            timeout,
        })
    }

    async fn connect(self) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let socket = if self.to.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        if let Some(from) = self.from {
            socket.bind(SocketAddr::new(from, 0))?;
        }
        socket.set_nodelay(true)?;
        let made = async {
            let tcp = socket.connect(self.to).await?;
            TlsConnector::from(self.tls.client())
                .connect(self.node, tcp)
                .await
        };
        tokio::time::timeout(self.timeout, made)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connecting timed out"))?
    }
}

impl tower::Service<http::Uri> for Dial {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let dial = self.clone();
        Box::pin(async move { dial.connect().await.map(hyper_util::rt::TokioIo::new) })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::pki;

    #[test]
    fn an_identity_must_be_the_node_s_from_its_ca_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, other_ca, node) = (
            dir.path().join("ca"),
            dir.path().join("other"),
            dir.path().join("node1"),
        );
        pki::init(&ca, 30).unwrap();
        pki::init(&other_ca, 30).unwrap();
        pki::issue_into(&ca, "node1", &[], 30, &node).unwrap();
        let tls = PeerTls::load(&node, "node1").unwrap();
        let left = tls
            .not_after()
            .duration_since(SystemTime::now())
            .unwrap()
            .as_secs();
        assert!((29 * 86_400..=30 * 86_400).contains(&left), "{left}");

        let e = PeerTls::load(&node, "node2").unwrap_err().to_string();
        assert!(e.contains("not node node2's"), "{e}");
        assert!(e.contains("pki issue --ca CA_DIR --node node2"), "{e}");

        std::fs::copy(other_ca.join(CA_CERT), node.join(CA_CERT)).unwrap();
        let e = PeerTls::load(&node, "node1").unwrap_err().to_string();
        assert!(e.contains("not issued by a CA of ca.crt"), "{e}");
        // Both CAs trusted (a CA rotation's middle step): taken.
        let both = [ca.join(CA_CERT), other_ca.join(CA_CERT)]
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect::<String>();
        std::fs::write(node.join(CA_CERT), both).unwrap();
        PeerTls::load(&node, "node1").unwrap();

        let key = node.join(NODE_KEY);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = PeerTls::load(&node, "node1").unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

        // A key that is not the certificate's.
        let other = dir.path().join("other-node");
        pki::issue_into(&ca, "node1", &[], 30, &other).unwrap();
        std::fs::copy(other.join(NODE_KEY), &key).unwrap();
        let e = PeerTls::load(&node, "node1").unwrap_err().to_string();
        assert!(e.contains("does not match tls.crt"), "{e}");

        let e = PeerTls::load(&dir.path().join("none"), "node1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read certificates"), "{e}");
    }

    #[test]
    fn a_certificate_names_only_its_node() {
        let dir = tempfile::tempdir().unwrap();
        pki::init(&dir.path().join("ca"), 30).unwrap();
        let out = dir.path().join("n");
        pki::issue_into(&dir.path().join("ca"), "node1", &[], 30, &out).unwrap();
        let cert = CertificateDer::from_pem_file(out.join(NODE_CERT)).unwrap();
        assert!(names_node(&cert, "node1"));
        for other in ["node2", "node", "node1.example", "*", ""] {
            assert!(!names_node(&cert, other), "{other}");
        }
    }
}
