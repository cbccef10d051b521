//! Client certificates, one per `client_unique_id`, cached in memory like moonlight-web does.
//!
//! Each gets a unique subject (`CN=moonlight-<uuid>, O=Moonlight Client`), the Nov 11 fix;
//! without it Wolf's partial-chain check collapsed every client onto the first. F1
//! (`cert-subject-collision`) brings back the old fixed subject.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Clone)]
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

#[derive(Default)]
pub struct CertCache {
    by_client: Mutex<HashMap<String, ClientCert>>,
    /// Every certificate gets [`FIXED_SUBJECT`] (before the Nov 11 fix).
    fixed_subject: bool,
}

/// The subject every moonlight-web client certificate had until Nov 11 (F1).
pub const FIXED_SUBJECT: [(rcgen::DnType, &str); 5] = [
    (rcgen::DnType::CommonName, "example.com"),
    (rcgen::DnType::OrganizationName, "Example Corp"),
    (rcgen::DnType::LocalityName, "San Francisco"),
    (rcgen::DnType::StateOrProvinceName, "CA"),
    (rcgen::DnType::CountryName, "US"),
];

#[derive(Debug, thiserror::Error)]
#[error("could not generate a client certificate: {0}")]
pub struct CertError(String);

impl CertCache {
    pub fn new(fixed_subject: bool) -> Self {
        Self { by_client: Mutex::default(), fixed_subject }
    }

    /// The certificate of `client_unique_id`, generated on first use. A client without a unique
    /// id gets a fresh certificate every time (nothing to cache it under).
    pub fn get_or_create(&self, client_unique_id: Option<&str>) -> Result<ClientCert, CertError> {
        let mut map = self.by_client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = client_unique_id {
            if let Some(c) = map.get(id) {
                return Ok(c.clone());
            }
        }
        let cert = generate(self.fixed_subject)?;
        if let Some(id) = client_unique_id {
            map.insert(id.to_string(), cert.clone());
        }
        Ok(cert)
    }

    pub fn clients(&self) -> Vec<String> {
        self.by_client.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }
}

fn generate(fixed_subject: bool) -> Result<ClientCert, CertError> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| CertError(e.to_string()))?;
    let mut dn = rcgen::DistinguishedName::new();
    if fixed_subject {
        for (ty, value) in FIXED_SUBJECT {
            dn.push(ty, value);
        }
    } else {
        dn.push(rcgen::DnType::CommonName, format!("moonlight-{}", uuid::Uuid::new_v4()));
        dn.push(rcgen::DnType::OrganizationName, "Moonlight Client");
    }
    params.distinguished_name = dn;
    let key = rcgen::KeyPair::generate().map_err(|e| CertError(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| CertError(e.to_string()))?;
    Ok(ClientCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject_of(pem: &str) -> (String, String, Vec<u8>) {
        let der = crate::streamer::host::cert_der_from_pem(pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        (cert.subject().to_string(), cert.issuer().to_string(), cert.public_key().raw.to_vec())
    }

    #[test]
    fn subjects_are_unique_unless_the_collision_fault_is_on() {
        let fixed = CertCache::new(true);
        let (a, b) = (fixed.get_or_create(Some("a")).unwrap(), fixed.get_or_create(Some("b")).unwrap());
        let (sa, ia, ka) = subject_of(&a.cert_pem);
        let (sb, ib, kb) = subject_of(&b.cert_pem);
        assert_eq!(sa, "CN=example.com, O=Example Corp, L=San Francisco, ST=CA, C=US");
        assert_eq!((&sa, &ia), (&sb, &ib), "fixed subject and issuer");
        assert_ne!(ka, kb, "each client still has its own key");
        assert_eq!(fixed.get_or_create(Some("a")).unwrap().cert_pem, a.cert_pem, "cached per client");

        let fixed_not = CertCache::default();
        let (sa, _, _) = subject_of(&fixed_not.get_or_create(Some("a")).unwrap().cert_pem);
        let (sb, _, _) = subject_of(&fixed_not.get_or_create(Some("b")).unwrap().cert_pem);
        assert!(sa.starts_with("CN=moonlight-") && sa.ends_with("O=Moonlight Client"), "{sa}");
        assert_ne!(sa, sb);
    }
}
