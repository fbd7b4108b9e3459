//! TLS for MQTT (`mqtts://` brokers), shared by the output and the driver: the client's
//! settings read from PEM files when the configuration is validated (`tls_ca`, and for mutual
//! TLS `tls_cert` with `tls_key`) and made into a rustls client configuration with the `ring`
//! provider, handed to every connection to an `mqtts://` broker. A file that cannot be read or
//! holds nothing usable is a [`TlsError`] naming it, which the configuration turns into a
//! one-line error naming the field; nothing here panics. The broker's certificate is checked
//! against the CA for the host name (or IP address) of the broker's address.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The TLS settings of MQTT connections to `mqtts://` brokers: the CA that signs the brokers'
/// certificates and, for mutual TLS, the client's certificate and key.
#[derive(Clone)]
pub struct MqttTls {
    ca: PathBuf,
    client: Option<(PathBuf, PathBuf)>,
    /// Built once from the files, shared by every connection.
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for MqttTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttTls")
            .field("ca", &self.ca)
            .field("client", &self.client)
            .finish()
    }
}

/// Two settings are the same when they name the same files.
impl PartialEq for MqttTls {
    fn eq(&self, other: &Self) -> bool {
        self.ca == other.ca && self.client == other.client
    }
}

/// Which file of the TLS settings a [`TlsError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFile {
    /// The CA certificates (`tls_ca`).
    Ca,
    /// The client's certificate (`tls_cert`).
    Cert,
    /// The client's private key (`tls_key`).
    Key,
}

impl TlsFile {
    /// Its configuration key.
    pub fn field(self) -> &'static str {
        match self {
            TlsFile::Ca => "tls_ca",
            TlsFile::Cert => "tls_cert",
            TlsFile::Key => "tls_key",
        }
    }
}

/// A TLS file that cannot be used: which one and why (the message names the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct TlsError {
    /// Which file.
    pub file: TlsFile,
    /// What is wrong, naming the file's path.
    pub message: String,
}

impl MqttTls {
    /// Reads the CA certificates from the PEM file `ca` and, for mutual TLS, the client's
    /// certificate chain and private key (PKCS#8, PKCS#1 or SEC1) from `client`'s PEM files.
    pub fn from_pem_files(ca: &Path, client: Option<(&Path, &Path)>) -> Result<MqttTls, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for (i, cert) in certificates(TlsFile::Ca, ca)?.into_iter().enumerate() {
            roots.add(cert).map_err(|e| TlsError {
                file: TlsFile::Ca,
                message: format!(
                    "expected CA certificates in {}, certificate {} is not one: {e}",
                    ca.display(),
                    i + 1
                ),
            })?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError {
                file: TlsFile::Ca,
                message: format!("cannot set up TLS: {e}"),
            })?
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = certificates(TlsFile::Cert, cert)?;
                let bytes = read(TlsFile::Key, key)?;
                let private = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError {
                    file: TlsFile::Key,
                    message: match e {
                        pem::Error::NoItemsFound => format!(
                            "expected a PEM private key (PKCS#8, PKCS#1 or SEC1) in {}, found none",
                            key.display()
                        ),
                        e => format!("expected a PEM private key in {}: {}", key.display(), pem_error(&e)),
                    },
                })?;
                builder.with_client_auth_cert(chain, private).map_err(|e| TlsError {
                    file: TlsFile::Key,
                    message: format!(
                        "cannot use the key in {} with the certificate in {}: {e}",
                        key.display(),
                        cert.display()
                    ),
                })?
            }
        };
        Ok(MqttTls {
            ca: ca.to_path_buf(),
            client: client.map(|(c, k)| (c.to_path_buf(), k.to_path_buf())),
            config: Arc::new(config),
        })
    }

    /// The CA file.
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// The client's certificate and key files, for mutual TLS.
    pub fn client(&self) -> Option<(&Path, &Path)> {
        self.client.as_ref().map(|(c, k)| (c.as_path(), k.as_path()))
    }

    /// The transport of a connection to an `mqtts://` broker.
    pub(crate) fn transport(&self) -> rumqttc::Transport {
        rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(self.config.clone()))
    }
}

fn read(file: TlsFile, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError {
        file,
        message: format!("cannot read {}: {e}", path.display()),
    })
}

/// The certificates of a PEM file, at least one.
fn certificates(file: TlsFile, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(file, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError {
            file,
            message: format!("expected PEM certificates in {}: {}", path.display(), pem_error(&e)),
        })?;
    if certs.is_empty() {
        return Err(TlsError {
            file,
            message: format!(
                "expected PEM certificates (\"-----BEGIN CERTIFICATE-----\") in {}, found none",
                path.display()
            ),
        });
    }
    Ok(certs)
}

fn pem_error(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".into(),
        pem::Error::Base64Decode(_) => "a section is not valid base64".into(),
        e => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = MqttTls::from_pem_files(&missing, None).unwrap_err();
        assert_eq!(e.file, TlsFile::Ca);
        assert!(
            e.message.starts_with(&format!("cannot read {}: ", missing.display())),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        assert_eq!(
            MqttTls::from_pem_files(&empty, None).unwrap_err().message,
            format!(
                "expected PEM certificates (\"-----BEGIN CERTIFICATE-----\") in {}, found none",
                empty.display()
            )
        );
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = MqttTls::from_pem_files(&garbage, None).unwrap_err();
        assert!(
            e.message.starts_with(&format!(
                "expected CA certificates in {}, certificate 1 is not one: ",
                garbage.display()
            )),
            "{e}"
        );
    }
}
