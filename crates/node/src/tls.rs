//! Mutual TLS 1.3 between peers, with PeerIds pinned in both directions.
//!
//! Each node presents a self-signed certificate made from its Ed25519
//! identity key. There are no certificate authorities: a client accepts a
//! server only if the key in its certificate *is* the PeerId it meant to
//! reach, and a server accepts any client that proves possession of an
//! Ed25519 key, learning the caller's PeerId from it. Both sides still check
//! the handshake signature, so presenting someone else's certificate without
//! its private key fails the handshake.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use shoal_core::{Identity, PeerId};

/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 key bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The one crypto provider of the process (ring), installed as the default
/// so every rustls user (reqwest included) agrees on it.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let p = rustls::crypto::ring::default_provider();
            // Fails only if another provider was installed first; keep it.
            let _ = p.clone().install_default();
            Arc::new(p)
        })
        .clone()
}

/// A TLS setup failure (certificate generation or configuration).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS: {0}")]
pub struct TlsSetupError(String);

/// The peer presented a certificate that is not the one we pinned.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the peer at this address is {found}, not {expected}: refusing to talk to it")]
pub struct WrongPeer {
    /// Who we meant to reach.
    pub expected: PeerId,
    /// Whose key answered (or "not an Ed25519 key").
    pub found: String,
}

/// Reads the PeerId out of a peer certificate.
pub fn peer_id_of(cert: &CertificateDer<'_>) -> Result<PeerId, rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    let spki = parsed.subject_public_key_info();
    let bytes = spki.as_ref();
    match bytes.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(key) if key.len() == 32 => {
            let mut k = [0u8; 32];
            k.copy_from_slice(key);
            Ok(PeerId::from_bytes(k))
        }
        _ => Err(rustls::Error::InvalidCertificate(
            CertificateError::BadEncoding,
        )),
    }
}

fn certificate(
    identity: &Identity,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsSetupError> {
    let der = identity.pkcs8_der();
    let key_der = PrivatePkcs8KeyDer::from(der);
    let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&key_der, &rcgen::PKCS_ED25519)
        .map_err(|e| TlsSetupError(e.to_string()))?;
    let params = rcgen::CertificateParams::new(vec![format!("{}.shoal", identity.peer_id())])
        .map_err(|e| TlsSetupError(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsSetupError(e.to_string()))?;
    Ok((cert.der().clone(), PrivateKeyDer::Pkcs8(key_der)))
}

fn algorithms() -> WebPkiSupportedAlgorithms {
    provider().signature_verification_algorithms
}

fn verify13(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    if dss.scheme != SignatureScheme::ED25519 {
        return Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::NoSignatureSchemesInCommon,
        ));
    }
    rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms())
}

fn tls12_refused() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::PeerIncompatible(
        rustls::PeerIncompatible::Tls13RequiredForQuic,
    ))
}

/// Server side: any Ed25519 client certificate, checked by its handshake signature.
#[derive(Debug)]
struct AnyPeer;

impl ClientCertVerifier for AnyPeer {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        peer_id_of(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// Where a client verifier leaves the last pinning failure, so the caller
/// can tell "wrong peer" apart from other connection errors.
pub type MismatchSlot = Arc<std::sync::Mutex<Option<WrongPeer>>>;

/// What a client accepts of the key a server presents.
trait ServerKey: std::fmt::Debug + Send + Sync {
    /// Whether the certificate's key will do.
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error>;
}

/// A client verifier: the key decides ([`ServerKey`]), TLS 1.3 and
/// Ed25519 only, the handshake signature always checked.
#[derive(Debug)]
struct ByKey<K>(K);

impl<K: ServerKey> ServerCertVerifier for ByKey<K> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0.check(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// Client side: exactly one PeerId is acceptable.
#[derive(Debug)]
struct Pinned(PeerId, MismatchSlot);

impl ServerKey for Pinned {
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let found =
            peer_id_of(cert).map_or_else(|_| "not an Ed25519 key".to_owned(), |p| p.to_string());
        if found == self.0.to_string() {
            return Ok(());
        }
        let wrong = WrongPeer {
            expected: self.0,
            found,
        };
        *self.1.lock().unwrap_or_else(|p| p.into_inner()) = Some(wrong);
        Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }
}

/// Where an [`Identifying`] verifier leaves the key the peer presented.
pub type SeenSlot = Arc<std::sync::Mutex<Option<PeerId>>>;

/// Client side, for a peer known by address only: any Ed25519 key is
/// taken (its handshake signature still checked) and recorded, so the
/// caller learns who answers there.
#[derive(Debug)]
struct Identifying(SeenSlot);

impl ServerKey for Identifying {
    fn check(&self, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        let id = peer_id_of(cert)?;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
        Ok(())
    }
}

/// A client configuration that presents `identity` and accepts the
/// server's key as `key` says.
fn client_with(
    identity: &Identity,
    key: impl ServerKey + 'static,
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let (cert, private) = certificate(identity)?;
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsSetupError(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ByKey(key)))
        .with_client_auth_cert(vec![cert], private)
        .map_err(|e| TlsSetupError(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// A client configuration that presents `identity` and takes whatever
/// Ed25519 key the peer proves, leaving it in the returned slot: only for
/// learning who listens at an address (the learnt id is then pinned).
pub fn identifying_config(
    identity: &Identity,
) -> Result<(rustls::ClientConfig, SeenSlot), TlsSetupError> {
    let slot = SeenSlot::default();
    Ok((client_with(identity, Identifying(slot.clone()))?, slot))
}

/// The server configuration of a node: TLS 1.3, client certificate required.
pub fn server_config(identity: &Identity) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let (cert, key) = certificate(identity)?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsSetupError(e.to_string()))?
        .with_client_cert_verifier(Arc::new(AnyPeer))
        .with_single_cert(vec![cert], key)
        .map_err(|e| TlsSetupError(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A client configuration that presents `identity` and accepts only `peer`;
/// pinning failures are also left in the returned slot.
pub fn client_config(
    identity: &Identity,
    peer: PeerId,
) -> Result<(rustls::ClientConfig, MismatchSlot), TlsSetupError> {
    let slot = MismatchSlot::default();
    Ok((client_with(identity, Pinned(peer, slot.clone()))?, slot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_carries_the_peer_id() {
        let id = Identity::from_seed([9; 32]);
        let (cert, _) = certificate(&id).unwrap();
        assert_eq!(peer_id_of(&cert).unwrap(), id.peer_id());
    }
}
