//! The TLS flags, shared by `node` and the client subcommands.

use std::path::{Path, PathBuf};

use clap::Args;
use rs2p::core::{Config, TlsIdentity};
use rs2p::net::tls::parse_trust_list;
use rs2p::wire::{protocol, Protocol};

use super::{Failure, EXIT_USAGE};

/// Encryption and peer authentication (flattened into each subcommand).
#[derive(Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Wrap every connection in TLS, as py2p's encryption "SSL" (another
    /// protocol id: only SSL nodes of the subnet link).
    #[arg(long)]
    pub tls: bool,
    /// Only link peers whose certificate's SHA-256 fingerprint is listed in
    /// FILE (64 hex digits a line, # comments), in both directions.
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub tls_trust: Option<PathBuf>,
    /// Only link peers whose certificate is signed by a CA in FILE (PEM),
    /// in both directions (names are not checked).
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub tls_ca: Option<PathBuf>,
    /// This node's certificate (PEM, chain first to last); without it a
    /// self-signed one is made (and kept in --data-dir, if given).
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_cert"])]
    pub tls_key: Option<PathBuf>,
}

impl TlsArgs {
    /// Sets the protocol (`subnet` with `SSL` or `Plaintext`) and the TLS
    /// options of `cfg`, reading the files named.
    pub fn apply(&self, subnet: &str, cfg: &mut Config) -> Result<(), Failure> {
        let encryption = if self.tls { protocol::SSL } else { protocol::PLAINTEXT };
        cfg.protocol = Protocol::new(subnet, encryption);
        if let Some(path) = &self.tls_trust {
            let list = parse_trust_list(&read_text(path)?)
                .map_err(|e| Failure::new(EXIT_USAGE, format!("{}: {e}", path.display())))?;
            if list.is_empty() {
                return Err(Failure::new(EXIT_USAGE, format!("{}: no fingerprint in the trust file", path.display())));
            }
            cfg.tls.trusted = Some(list);
        }
        if let Some(path) = &self.tls_ca {
            cfg.tls.ca_pem = Some(read(path)?);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            cfg.tls.identity = Some(TlsIdentity { cert_pem: read(cert)?, key_pem: read(key)? });
        }
        Ok(())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::new(EXIT_USAGE, format!("cannot read {}: {e}", path.display())))
}

fn read_text(path: &Path) -> Result<String, Failure> {
    String::from_utf8(read(path)?).map_err(|_| Failure::new(EXIT_USAGE, format!("{}: not UTF-8 text", path.display())))
}
