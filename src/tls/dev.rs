//! Development certificates (rcgen): a dev CA, and per DC a client-port server certificate
//! (localhost, 127.0.0.1, ::1 and any extra hosts) and a peer certificate naming the DC
//! (`{dc}.peer.coopr-router`, used both as the peer port's server certificate and as the
//! outgoing client certificate). `coopr-router certs dev` writes them; tests make them in memory.

use super::identity::peer_dns_name;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, date_time_ymd,
};
use std::path::{Path, PathBuf};

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Usage {
    /// A client-port server certificate for these host names and addresses.
    Server(Vec<String>),
    /// A DC router's peer certificate (server and client authentication).
    Peer(String),
}

/// Validity in whole years from January 1st of `from_year`.
#[derive(Debug, Clone, Copy)]
pub struct Validity {
    pub from_year: i32,
    pub years: i32,
}

impl Validity {
    /// From January 1st of this year, for `years` years.
    pub fn current(years: i32) -> Validity {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Validity {
            from_year: 1970 + (secs / 31_556_952) as i32,
            years,
        }
    }
    /// Expired long ago (for tests of refusal).
    pub fn expired() -> Validity {
        Validity {
            from_year: 2001,
            years: 1,
        }
    }
}

/// A development CA that signs leaf certificates.
pub struct DevCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl DevCa {
    /// A new CA with a fresh key, valid for 10 years from this year.
    pub fn new(name: &str) -> Result<DevCa, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, Validity::current(10));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(DevCa { issuer })
    }

    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a leaf certificate.
    pub fn issue(&self, usage: &Usage, validity: Validity) -> Result<Leaf, rcgen::Error> {
        let (names, cn, ekus) = match usage {
            Usage::Server(hosts) => (
                hosts.clone(),
                hosts.first().cloned().unwrap_or_default(),
                vec![ExtendedKeyUsagePurpose::ServerAuth],
            ),
            Usage::Peer(dc) => (
                vec![peer_dns_name(dc)],
                dc.clone(),
                vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ],
            ),
        };
        let mut params = CertificateParams::new(names)?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = ekus;
        set_validity(&mut params, validity);
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn set_validity(params: &mut CertificateParams, v: Validity) {
    params.not_before = date_time_ymd(v.from_year, 1, 1);
    params.not_after = date_time_ymd(v.from_year + v.years, 1, 1);
}

/// The default host names of a dev server certificate.
pub fn default_hosts() -> Vec<String> {
    ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec()
}

/// Writes a dev CA and every DC's certificates under `out`:
/// `ca.pem`, `ca.key`, and `{dc}/server.pem`, `server.key`, `peer.pem`, `peer.key`.
/// Keys are written with mode 0600. Returns the files written.
pub fn write_dev_set(
    out: &Path,
    dcs: &[String],
    hosts: &[String],
) -> std::io::Result<Vec<PathBuf>> {
    let ca = DevCa::new("coopr-router dev CA").map_err(|e| std::io::Error::other(e.to_string()))?;
    write_with(&ca, out, dcs, hosts)
}

/// [`write_dev_set`] with a given CA (tests keep it to issue more certificates).
pub fn write_with(
    ca: &DevCa,
    out: &Path,
    dcs: &[String],
    hosts: &[String],
) -> std::io::Result<Vec<PathBuf>> {
    let io = |e: rcgen::Error| std::io::Error::other(e.to_string());
    let mut written = Vec::new();
    std::fs::create_dir_all(out)?;
    write(&out.join("ca.pem"), &ca.cert_pem(), false, &mut written)?;
    write(&out.join("ca.key"), &ca.key_pem(), true, &mut written)?;
    let mut server_hosts = default_hosts();
    server_hosts.extend(hosts.iter().cloned());
    for dc in dcs {
        let dir = out.join(dc);
        std::fs::create_dir_all(&dir)?;
        let v = Validity::current(2);
        let server = ca
            .issue(&Usage::Server(server_hosts.clone()), v)
            .map_err(io)?;
        let peer = ca.issue(&Usage::Peer(dc.clone()), v).map_err(io)?;
        write(
            &dir.join("server.pem"),
            &server.cert_pem,
            false,
            &mut written,
        )?;
        write(&dir.join("server.key"), &server.key_pem, true, &mut written)?;
        write(&dir.join("peer.pem"), &peer.cert_pem, false, &mut written)?;
        write(&dir.join("peer.key"), &peer.key_pem, true, &mut written)?;
    }
    Ok(written)
}

fn write(path: &Path, text: &str, secret: bool, written: &mut Vec<PathBuf>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if secret {
        opts.mode(0o600);
    }
    opts.open(path)?.write_all(text.as_bytes())?;
    written.push(path.to_path_buf());
    Ok(())
}

/// The `[tls]` sections for DC `dc` using a `write_dev_set` layout under `dir`.
pub fn tls_section(dir: &Path, dc: &str) -> String {
    let p = |rel: &str| dir.join(rel).display().to_string().replace('\\', "/");
    format!(
        "\n[tls.client]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\n[tls.peer]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        p(&format!("{dc}/server.pem")),
        p(&format!("{dc}/server.key")),
        p("ca.pem"),
        p(&format!("{dc}/peer.pem")),
        p(&format!("{dc}/peer.key")),
    )
}

/// Turns a config's text to TLS everywhere with the dev set under `dir`: https peer URLs and
/// the `[tls]` sections of `dc` (the demo's `--tls`).
pub fn enable_in(text: &str, dir: &Path, dc: &str) -> String {
    text.replace("peer_url = \"http://", "peer_url = \"https://") + &tls_section(dir, dc)
}
