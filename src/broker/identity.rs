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
