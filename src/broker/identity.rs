//! Instance identity: besides its address, an instance may prove who it is with a document its
//! cloud signed. The backend reports the identity it expects (`Instance::identity`, e.g.
//! `gce:PROJECT/ZONE/NAME/ID`); the broker binds the credential to it and, at redemption, asks
//! the [`IdentityCheck`] of that scheme what the presented proof shows. A proof that is missing,
//! forged, expired, for another audience or for another instance gets nothing.

/// What a signed proof of identity shows.
#[async_trait::async_trait]
pub trait IdentityCheck: Send + Sync {
    /// The scheme it checks: the part of an identity before the `:` (`gce`).
    fn scheme(&self) -> &'static str;
    /// The identity the proof shows, or why it shows none (never the proof itself).
    async fn identity(&self, proof: &str) -> Result<String, String>;
}

pub use crate::model::gce_identity;

/// Google's published keys for the identity tokens of Compute Engine instances.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";

/// Checks Compute Engine identity tokens (`format=full`, audience the broker's URL): Google's
/// signature against its published keys (the key set URL configurable, for tests), issuer,
/// audience and expiry, then the instance they name.
#[cfg(feature = "gcp")]
pub struct GceIdentity {
    verifier: google_cloud_auth::credentials::idtoken::verifier::Verifier,
}

#[cfg(feature = "gcp")]
impl GceIdentity {
    /// `audience` is the broker's URL, which the instance asks its token for.
    pub fn new(audience: &str, jwks_url: Option<&str>) -> GceIdentity {
        let builder = google_cloud_auth::credentials::idtoken::verifier::Builder::new([audience
            .trim_end_matches('/')
            .to_string()])
        .with_jwks_url(jwks_url.unwrap_or(GOOGLE_JWKS_URL))
        .with_clock_skew(std::time::Duration::from_secs(30));
        GceIdentity {
            verifier: builder.build(),
        }
    }
}

#[cfg(feature = "gcp")]
#[async_trait::async_trait]
impl IdentityCheck for GceIdentity {
    fn scheme(&self) -> &'static str {
        "gce"
    }

    async fn identity(&self, proof: &str) -> Result<String, String> {
        let header = jsonwebtoken::decode_header(proof).map_err(|e| format!("not a JWT: {e}"))?;
        if header.alg != jsonwebtoken::Algorithm::RS256 {
            return Err(format!("signed with {:?}, not RS256", header.alg));
        }
        let claims = self
            .verifier
            .verify(proof)
            .await
            .map_err(|e| format!("identity token refused: {e}"))?;
        let ce = claims
            .get("google")
            .and_then(|g| g.get("compute_engine"))
            .ok_or("the identity token has no compute_engine claims (ask with format=full)")?;
        let field = |k: &str| match ce.get(k) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(serde_json::Value::Number(n)) => Ok(n.to_string()),
            _ => Err(format!("the identity token has no `{k}`")),
        };
        Ok(gce_identity(
            &field("project_id")?,
            &field("zone")?,
            &field("instance_name")?,
            &field("instance_id")?,
        ))
    }
}

/// Checks EC2's signed instance identity documents: the document (base64) and its RSA-SHA256
/// signature (IMDS `…/instance-identity/signature`), joined by a `.`, verified against AWS's
/// public certificates of the regions in use (published in EC2's user guide, given in
/// `broker.aws_identity_certs_file`), then the account, region and instance they name.
#[cfg(feature = "aws")]
pub struct Ec2Identity {
    keys: Vec<rsa::pkcs1v15::VerifyingKey<sha2::Sha256>>,
}

#[cfg(feature = "aws")]
impl Ec2Identity {
    /// From a PEM bundle of certificates (or public keys).
    pub fn from_pem(pem: &str) -> Result<Ec2Identity, String> {
        use rsa::pkcs8::DecodePublicKey;
        use x509_cert::der::{Decode, Encode};
        let mut keys = Vec::new();
        for block in pem_blocks(pem) {
            let (label, der) = block?;
            let spki = match label.as_str() {
                "CERTIFICATE" => x509_cert::Certificate::from_der(&der)
                    .map_err(|e| format!("a certificate does not parse: {e}"))?
                    .tbs_certificate
                    .subject_public_key_info
                    .to_der()
                    .map_err(|e| e.to_string())?,
                "PUBLIC KEY" => der,
                other => {
                    return Err(format!(
                        "a `{other}` block is neither a certificate nor a public key"
                    ))
                }
            };
            let key = rsa::RsaPublicKey::from_public_key_der(&spki)
                .map_err(|e| format!("not an RSA public key: {e}"))?;
            keys.push(rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key));
        }
        if keys.is_empty() {
            return Err("no certificate in the file".into());
        }
        Ok(Ec2Identity { keys })
    }
}

/// The PEM blocks of a text: label and DER.
#[cfg(feature = "aws")]
fn pem_blocks(pem: &str) -> Vec<Result<(String, Vec<u8>), String>> {
    use base64::Engine;
    let mut out = Vec::new();
    let mut lines = pem.lines();
    while let Some(line) = lines.next() {
        let Some(label) = line
            .trim()
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let body: String = lines
            .by_ref()
            .take_while(|l| l.trim() != end)
            .map(str::trim)
            .collect();
        out.push(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map(|der| (label.to_string(), der))
                .map_err(|e| format!("a `{label}` block is not base64: {e}")),
        );
    }
    out
}

#[cfg(feature = "aws")]
#[async_trait::async_trait]
impl IdentityCheck for Ec2Identity {
    fn scheme(&self) -> &'static str {
        "ec2"
    }

    async fn identity(&self, proof: &str) -> Result<String, String> {
        use base64::Engine;
        use rsa::signature::Verifier;
        let b64 = base64::engine::general_purpose::STANDARD;
        let (doc, sig) = proof
            .rsplit_once('.')
            .ok_or("not a document and signature joined by `.`")?;
        let doc = b64
            .decode(doc)
            .map_err(|e| format!("the document is not base64: {e}"))?;
        let sig = b64
            .decode(sig)
            .map_err(|e| format!("the signature is not base64: {e}"))?;
        let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice())
            .map_err(|e| format!("not an RSA signature: {e}"))?;
        if !self.keys.iter().any(|k| k.verify(&doc, &sig).is_ok()) {
            return Err("the document's signature is not AWS's".into());
        }
        let v: serde_json::Value =
            serde_json::from_slice(&doc).map_err(|e| format!("the document is not JSON: {e}"))?;
        let field = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .filter(|s| !s.is_empty())
                .ok_or(format!("the document has no `{k}`"))
        };
        Ok(crate::model::ec2_identity(
            field("accountId")?,
            field("region")?,
            field("instanceId")?,
        ))
    }
}
