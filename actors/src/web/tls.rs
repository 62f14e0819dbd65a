//! HTTPS for the web interface on a network-facing address (`web_https_address`): the
//! user's certificate (`web_tls_cert`, `web_tls_key`), or a self-signed one made once with
//! rcgen and kept in the data directory (`web-tls/`), so that a browser's exception for it
//! lasts. Its SHA-256 fingerprint is logged at start, for the user to compare with what the
//! browser shows. TLS 1.2 and 1.3 (browsers), aws-lc-rs as everywhere else.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

pub use rustls::ServerConfig;

/// The server configuration, and the certificate's SHA-256 fingerprint (hex, `:`-separated).
pub fn server_config(data_dir: &Path, cert: &str, key: &str) -> Result<(rustls::ServerConfig, String), String> {
    let (cert_file, key_file) = if cert.is_empty() && key.is_empty() {
        self_signed(data_dir)?
    } else if cert.is_empty() || key.is_empty() {
        return Err("web_tls_cert and web_tls_key go together".into());
    } else {
        (cert.into(), key.into())
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
        .and_then(Iterator::collect)
        .map_err(|e| format!("reading the certificate {}: {e}", cert_file.display()))?;
    let first = chain.first().ok_or_else(|| format!("no certificate in {}", cert_file.display()))?;
    let fingerprint = Sha256::digest(first.as_ref()).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":");
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|e| format!("reading the private key {}: {e}", key_file.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| format!("the certificate and key do not make a TLS configuration: {e}"))?;
    Ok((config, fingerprint))
}

/// The self-signed certificate's files, made the first time.
fn self_signed(data_dir: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf), String> {
    let dir = data_dir.join("web-tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let mut names = vec!["localhost".to_owned()];
    let host = crate::config::host_name();
    if !host.is_empty() && host != "localhost" {
        names.push(host);
    }
    let made = rcgen::generate_simple_self_signed(names).map_err(|e| format!("making a certificate: {e}"))?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let write = crate::share::registry::write_secret_file;
    // The key first: a certificate without its key is never left behind.
    write(&key, made.key_pair.serialize_pem().as_bytes())
        .and_then(|()| write(&cert, made.cert.pem().as_bytes()))
        .map_err(|e| format!("saving the certificate in {}: {e}", dir.display()))?;
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (_, first) = server_config(dir.path(), "", "").unwrap();
        let (_, again) = server_config(dir.path(), "", "").unwrap();
        assert_eq!(first, again, "the same certificate after a restart");
        assert_eq!(first.len(), 32 * 3 - 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("web-tls/key.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The user's own files: both, readable.
        let cert = dir.path().join("web-tls/cert.pem");
        let key = dir.path().join("web-tls/key.pem");
        assert!(server_config(dir.path(), cert.to_str().unwrap(), "").is_err());
        assert!(server_config(dir.path(), cert.to_str().unwrap(), "/no/such/key.pem")
            .unwrap_err()
            .contains("private key"));
        assert!(server_config(dir.path(), key.to_str().unwrap(), key.to_str().unwrap()).is_err());
        assert_eq!(server_config(dir.path(), cert.to_str().unwrap(), key.to_str().unwrap()).unwrap().1, first);
    }
}
