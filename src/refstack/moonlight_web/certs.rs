//! Client certificates, one per `client_unique_id`, cached in memory like moonlight-web does.
//!
//! Each gets a unique subject (`CN=moonlight-<uuid>, O=Moonlight Client`), the Nov 11 fix;
//! without it Wolf's partial-chain check collapsed every client onto the first.

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
}

#[derive(Debug, thiserror::Error)]
#[error("could not generate a client certificate: {0}")]
pub struct CertError(String);

impl CertCache {
    /// The certificate of `client_unique_id`, generated on first use. A client without a unique
    /// id gets a fresh certificate every time (nothing to cache it under).
    pub fn get_or_create(&self, client_unique_id: Option<&str>) -> Result<ClientCert, CertError> {
        let mut map = self.by_client.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = client_unique_id {
            if let Some(c) = map.get(id) {
                return Ok(c.clone());
            }
        }
        let cert = generate()?;
        if let Some(id) = client_unique_id {
            map.insert(id.to_string(), cert.clone());
        }
        Ok(cert)
    }

    pub fn clients(&self) -> Vec<String> {
        self.by_client.lock().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect()
    }
}

fn generate() -> Result<ClientCert, CertError> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| CertError(e.to_string()))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, format!("moonlight-{}", uuid::Uuid::new_v4()));
    dn.push(rcgen::DnType::OrganizationName, "Moonlight Client");
    params.distinguished_name = dn;
    let key = rcgen::KeyPair::generate().map_err(|e| CertError(e.to_string()))?;
    let cert = params.self_signed(&key).map_err(|e| CertError(e.to_string()))?;
    Ok(ClientCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}
