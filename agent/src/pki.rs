//! Certificates for the Peers API: agents of a cluster call each other over mutual TLS, each
//! with a certificate whose name is its node, issued by the cluster's peer CA.
//!
//! `ovswire-agent pki init --dir CA` makes the CA (`ca.crt`, and `ca.key`, which no node needs);
//! `ovswire-agent pki issue --ca CA --node NAME --out DIR` makes a node's directory, the one its
//! agent reads with `--peer-tls-dir`: `ca.crt` (the CAs it trusts), `tls.crt` (its certificate)
//! and `tls.key` (its key), the file names of a Kubernetes TLS Secret. Issuing again into the same
//! directory is how a certificate is rotated: the agent picks the new files up while it runs.

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};

use crate::error::Error;

/// The CA's certificate, in a CA directory and in every node's.
pub const CA_CERT: &str = "ca.crt";
/// The CA's private key, in the CA directory only.
pub const CA_KEY: &str = "ca.key";
/// A node's certificate (then any intermediate certificates).
pub const NODE_CERT: &str = "tls.crt";
/// A node's private key.
pub const NODE_KEY: &str = "tls.key";
/// How long a CA is valid by default.
pub const CA_DAYS: u32 = 3650;
/// How long a node's certificate is valid by default.
pub const NODE_DAYS: u32 = 365;
/// The organisation written in every certificate this module makes.
const ORGANIZATION: &str = "ovswire";

fn pki_error(what: &str) -> impl FnOnce(rcgen::Error) -> Error + '_ {
    move |e| Error::Config(format!("{what}: {e}"))
}

/// Validity from a few minutes ago (clocks of a cluster differ a little) for `days` days.
fn validity(params: &mut CertificateParams, days: u32) -> Result<(), Error> {
    if days == 0 {
        return Err(Error::Config(
            "a certificate must be valid for at least 1 day".into(),
        ));
    }
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(i64::from(days));
    let mut serial = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut serial))
        .map_err(Error::io("read random bytes for a serial number"))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(())
}

/// A new self-signed CA valid for `days`: its certificate and key, PEM.
pub fn new_ca(days: u32) -> Result<(String, String), Error> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(pki_error("CA"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "ovswire peer CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, ORGANIZATION);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, days)?;
    let key = KeyPair::generate().map_err(pki_error("generate the CA's key"))?;
    let cert = params.self_signed(&key).map_err(pki_error("sign the CA"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Node `node`'s certificate and key (PEM), issued by the CA `ca_cert`/`ca_key` (PEM) for
/// `days`: its name (the subject's common name and DNS name) is the node's; `ips`, the node's
/// addresses, are written in it too, for people reading it.
pub fn issue(
    ca_cert: &str,
    ca_key: &str,
    node: &str,
    ips: &[IpAddr],
    days: u32,
) -> Result<(String, String), Error> {
    ovswire_core::model::check_object_name("node name", node)
        .map_err(|e| Error::Config(e.to_string()))?;
    let ca_key = KeyPair::from_pem(ca_key).map_err(pki_error("read the CA's key"))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert, ca_key)
        .map_err(pki_error("read the CA's certificate"))?;
    let mut params =
        CertificateParams::new(vec![node.to_owned()]).map_err(pki_error("a node's certificate"))?;
    params
        .subject_alt_names
        .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
    params.distinguished_name.push(DnType::CommonName, node);
    params
        .distinguished_name
        .push(DnType::OrganizationName, ORGANIZATION);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // The same certificate serves the node's Peers API and authenticates its calls.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, days)?;
    let key = KeyPair::generate().map_err(pki_error("generate the node's key"))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(pki_error("sign the node's certificate"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Runs `ovswire-agent pki ...`, saying on stdout what it wrote.
pub fn run(command: &crate::runtime::args::Pki) -> Result<(), Error> {
    use crate::runtime::args::Pki;
    match command {
        Pki::Init { dir, days } => {
            init(dir, *days)?;
            println!(
                "made the peer CA in {}: give {CA_CERT} to every node's `pki issue`, and keep \
                 {CA_KEY} off the nodes",
                dir.display()
            );
        }
        Pki::Issue {
            ca,
            node,
            ips,
            out,
            days,
        } => {
            issue_into(ca, node, ips, *days, out)?;
            println!(
                "issued node {node}'s certificate into {} (valid {days} days); start its agent \
                 with --peer-tls-dir {}",
                out.display(),
                out.display()
            );
        }
    }
    Ok(())
}

/// Makes a CA in `dir` (created mode 0700 if missing): `ca.crt`, and `ca.key` mode 0600. An
/// existing CA is never replaced.
pub fn init(dir: &Path, days: u32) -> Result<(), Error> {
    for name in [CA_CERT, CA_KEY] {
        if dir.join(name).exists() {
            return Err(Error::Config(format!(
                "{} already exists: a CA is never replaced, because every node's certificate \
                 depends on it; to start over, move the directory away first",
                dir.join(name).display()
            )));
        }
    }
    private_dir(dir)?;
    let (cert, key) = new_ca(days)?;
    write_file(&dir.join(CA_KEY), &key, 0o600)?;
    write_file(&dir.join(CA_CERT), &cert, 0o644)
}

/// Issues node `node`'s certificate from the CA in `ca_dir` into `out` (created mode 0700 if
/// missing): `ca.crt`, `tls.crt` and `tls.key` (mode 0600), each replaced whole, so an agent
/// reading them meanwhile sees the old files or the new ones.
pub fn issue_into(
    ca_dir: &Path,
    node: &str,
    ips: &[IpAddr],
    days: u32,
    out: &Path,
) -> Result<(), Error> {
    let read = |name: &str| {
        let path = ca_dir.join(name);
        std::fs::read_to_string(&path).map_err(Error::io(format!(
            "cannot read {} (make a CA with `ovswire-agent pki init --dir {}`)",
            path.display(),
            ca_dir.display()
        )))
    };
    check_private(&ca_dir.join(CA_KEY))?;
    let (ca_cert, ca_key) = (read(CA_CERT)?, read(CA_KEY)?);
    let (cert, key) = issue(&ca_cert, &ca_key, node, ips, days)?;
    private_dir(out)?;
    // The key first: until the certificate is replaced too, the old pair stays the one read
    // as a whole (a reader takes a certificate and key that do not match as an error and
    // keeps what it has).
    write_file(&out.join(NODE_KEY), &key, 0o600)?;
    write_file(&out.join(NODE_CERT), &cert, 0o644)?;
    write_file(&out.join(CA_CERT), &ca_cert, 0o644)
}

/// Creates `dir` mode 0700 when it does not exist.
fn private_dir(dir: &Path) -> Result<(), Error> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(Error::io(format!("create {}", dir.display())))?;
    }
    Ok(())
}

/// Replaces `path` with `text`, mode `mode` from the start (written aside, then renamed).
fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), Error> {
    let aside = path.with_extension(format!("new-{}", std::process::id()));
    let _ = std::fs::remove_file(&aside);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&aside)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&aside, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&aside);
    }
    written.map_err(Error::io(format!("write {}", path.display())))
}

/// Checks that a secret file (a token, a private key) belongs to the agent's user and that
/// nobody else may read or replace it (a Kubernetes Secret mounted with `defaultMode: 0400`
/// passes).
pub fn check_private(path: &Path) -> Result<(), Error> {
    let unreadable = || Error::io(format!("cannot read {}", path.display()));
    let meta = std::fs::metadata(path).map_err(unreadable())?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::Config(format!(
            "{} has mode {:o}: other users can read or replace it; `chmod 600` it",
            path.display(),
            mode & 0o777
        )));
    }
    // `/proc/self` belongs to the user this process runs as.
    let me = std::fs::metadata("/proc/self").map_err(unreadable())?.uid();
    if meta.uid() != me {
        return Err(Error::Config(format!(
            "{} belongs to user {}, not to the agent's user {me}; `chown {me}` it",
            path.display(),
            meta.uid()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_is_made_once_and_issues_certificates_named_for_their_node() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, node) = (dir.path().join("ca"), dir.path().join("node1"));
        init(&ca, CA_DAYS).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&ca), 0o700);
        assert_eq!(mode(&ca.join(CA_KEY)), 0o600);
        let again = init(&ca, CA_DAYS).unwrap_err().to_string();
        assert!(again.contains("never replaced"), "{again}");

        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        issue_into(&ca, "node1", &[ip], 30, &node).unwrap();
        assert_eq!(mode(&node.join(NODE_KEY)), 0o600);
        let pem = std::fs::read(node.join(NODE_CERT)).unwrap();
        let (_, der) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = der.parse_x509().unwrap();
        let names: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["DNSName(node1)", "IPAddress(c0:00:02:01)"]);
        let validity = cert.validity();
        assert_eq!(
            validity.not_after.timestamp() - validity.not_before.timestamp(),
            30 * 86_400 + 5 * 60,
            "valid for 30 days from 5 minutes ago"
        );
        assert_eq!(
            std::fs::read(node.join(CA_CERT)).unwrap(),
            std::fs::read(ca.join(CA_CERT)).unwrap()
        );
        // Issuing again replaces the three files.
        issue_into(&ca, "node1", &[], 30, &node).unwrap();
        assert_ne!(std::fs::read(node.join(NODE_CERT)).unwrap(), pem);

        for bad in ["Node_1", "", "a/b"] {
            assert!(issue_into(&ca, bad, &[], 30, &node).is_err(), "{bad:?}");
        }
        assert!(issue_into(&ca, "node1", &[], 0, &node).is_err());
        let missing = issue_into(&dir.path().join("none"), "node1", &[], 30, &node)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("cannot read"), "{missing}");
        std::fs::set_permissions(ca.join(CA_KEY), std::fs::Permissions::from_mode(0o644)).unwrap();
        let open = issue_into(&ca, "node1", &[], 30, &node)
            .unwrap_err()
            .to_string();
        assert!(open.contains("chmod 600"), "{open}");
    }
}
