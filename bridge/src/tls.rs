//! The bridge's TLS material, loaded once at start: the certificate and key it serves
//! `wss://` and `https://` with (`--tls-cert`, `--tls-key`), and what it trusts and presents
//! when it reaches memcached over TLS (`--upstream-ca`, `--upstream-cert`, `--upstream-key`).
//! rustls with the ring provider; every problem is a start-up error that names the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};

use crate::error::BridgeError;

/// Where the system's CA bundle lives, tried in turn when `--upstream-tls` has no
/// `--upstream-ca` (`SSL_CERT_FILE` first, as OpenSSL does): Debian and Ubuntu, Fedora and
/// RHEL, openSUSE, Alpine.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn bad(flag: &'static str, path: &Path, problem: impl Into<String>) -> BridgeError {
    BridgeError::BadTlsFile {
        flag,
        path: path.into(),
        problem: problem.into(),
    }
}

fn certificates(
    flag: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, BridgeError> {
    let read = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(flag, path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(flag, path, e.to_string()))?;
    if read.is_empty() {
        return Err(bad(flag, path, "holds no PEM certificate"));
    }
    Ok(read)
}

fn private_key(flag: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, BridgeError> {
    // The error never quotes the file: it holds a secret.
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls_pki_types::pem::Error::Io(error) => bad(flag, path, error.to_string()),
        _ => bad(
            flag,
            path,
            "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
        ),
    })
}

/// The configuration the bridge serves TLS with.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, BridgeError> {
    let chain = certificates("--tls-cert", cert)?;
    let key = private_key("--tls-key", key)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| BridgeError::TlsKeyPair {
            cert_flag: "--tls-cert",
            key_flag: "--tls-key",
            problem: e.to_string(),
        })?;
    Ok(Arc::new(config))
}

/// The configuration the bridge reaches memcached over TLS with: the CAs it trusts
/// (`ca`, else the system's bundle) and, for memcached's `ssl_verify_mode`, the client
/// certificate it presents.
pub fn client_config(
    ca: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, BridgeError> {
    let (flag, ca_path) = match ca {
        Some(path) => ("--upstream-ca", path.to_path_buf()),
        None => ("--upstream-tls (system CA bundle)", system_ca_bundle()?),
    };
    let mut roots = RootCertStore::empty();
    for certificate in certificates(flag, &ca_path)? {
        roots
            .add(certificate)
            .map_err(|e| bad(flag, &ca_path, e.to_string()))?;
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let mut config = builder
                .with_client_auth_cert(
                    certificates("--upstream-cert", cert)?,
                    private_key("--upstream-key", key)?,
                )
                .map_err(|e| BridgeError::TlsKeyPair {
                    cert_flag: "--upstream-cert",
                    key_flag: "--upstream-key",
                    problem: e.to_string(),
                })?;
            // memcached that verifies clients sets no OpenSSL session id context, so it
            // answers a resumed session with an internal_error alert: a full handshake each
            // time is what works.
            config.resumption = rustls::client::Resumption::disabled();
            config
        }
    };
    Ok(Arc::new(config))
}

fn system_ca_bundle() -> Result<PathBuf, BridgeError> {
    let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    from_env
        .into_iter()
        .chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from))
        .find(|path| path.is_file())
        .ok_or(BridgeError::NoSystemCa)
}
