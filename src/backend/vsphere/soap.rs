//! A small client of the vSphere Web Services API: SOAP 1.1 envelopes over HTTPS with
//! `reqwest`, answers read with `roxmltree` into owned [`El`] trees, a session cookie from
//! `SessionManager.Login` that is renewed once when a call answers `NotAuthenticated`.
//!
//! Only what the backend calls is here; requests are written by hand, every value escaped
//! ([`esc`]), elements in the order the WSDL's sequences require (real vCenters check it).

use crate::config::Secret;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
const SOAP_ACTION: &str = "urn:vim25/6.5";
/// XML Schema's types, written `xsd:…` in `xsi:type`.
const XSD_TYPES: [&str; 11] = [
    "string",
    "boolean",
    "byte",
    "short",
    "int",
    "long",
    "float",
    "double",
    "dateTime",
    "base64Binary",
    "anyURI",
];
const COOKIE: &str = "vmware_soap_session";
/// One call's ceiling (a black-holed connection must not hold a worker for ever).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How many requests [`Session::recorded`] keeps.
const RECORDED: usize = 512;

/// A managed object reference, `<tag type="KIND">VALUE</tag>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MoRef {
    pub kind: String,
    pub value: String,
}

impl MoRef {
    pub fn new(kind: &str, value: &str) -> MoRef {
        MoRef {
            kind: kind.into(),
            value: value.into(),
        }
    }
    /// The reference as the element `tag`.
    pub fn xml(&self, tag: &str) -> String {
        format!(
            "<{tag} type=\"{}\">{}</{tag}>",
            esc(&self.kind),
            esc(&self.value)
        )
    }
}

/// Escapes text for an element's content or an attribute value.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// An element of an answer: its local name, `xsi:type`, `type` attribute (a MoRef's), text
/// and child elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct El {
    pub name: String,
    pub xsi_type: Option<String>,
    pub ref_type: Option<String>,
    pub text: String,
    pub children: Vec<El>,
}

impl El {
    fn of(node: roxmltree::Node<'_, '_>) -> El {
        let mut el = El {
            name: node.tag_name().name().to_string(),
            xsi_type: node.attribute((XSI, "type")).map(|t| {
                // `xsd:string` → `string`
                t.rsplit(':').next().unwrap_or(t).to_string()
            }),
            ref_type: node.attribute("type").map(str::to_string),
            ..El::default()
        };
        for c in node.children() {
            if c.is_element() {
                el.children.push(El::of(c));
            } else if c.is_text() {
                el.text.push_str(c.text().unwrap_or_default());
            }
        }
        el
    }

    /// Parses a document's root element.
    pub fn parse(text: &str) -> Result<El, SoapError> {
        let doc = roxmltree::Document::parse(text)
            .map_err(|e| SoapError::Answer(format!("not XML: {e}")))?;
        Ok(El::of(doc.root_element()))
    }

    pub fn child(&self, name: &str) -> Option<&El> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a El> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The descendant at this path of child names.
    pub fn at(&self, path: &[&str]) -> Option<&El> {
        path.iter().try_fold(self, |el, name| el.child(name))
    }

    pub fn text_at(&self, path: &[&str]) -> Option<&str> {
        self.at(path).map(|e| e.text.as_str())
    }

    /// The element written back as XML (a device read from the property collector, edited
    /// and sent in a device change: what govc does, and what vCenter expects).
    pub fn to_xml(&self) -> String {
        self.to_xml_with(|_| None)
    }

    /// [`El::to_xml`] with some children replaced: `swap` answers their XML by name.
    pub fn to_xml_with(&self, swap: impl Fn(&El) -> Option<String> + Copy) -> String {
        let mut out = format!("<{}", self.name);
        if let Some(t) = &self.xsi_type {
            let prefix = if XSD_TYPES.contains(&t.as_str()) {
                "xsd:"
            } else {
                ""
            };
            out.push_str(&format!(" xsi:type=\"{prefix}{}\"", esc(t)));
        }
        if let Some(t) = &self.ref_type {
            out.push_str(&format!(" type=\"{}\"", esc(t)));
        }
        out.push('>');
        out.push_str(&esc(&self.text));
        for c in &self.children {
            match swap(c) {
                Some(x) => out.push_str(&x),
                None => out.push_str(&c.to_xml_with(swap)),
            }
        }
        out.push_str(&format!("</{}>", self.name));
        out
    }

    /// The element as a managed object reference.
    pub fn moref(&self) -> Option<MoRef> {
        let kind = self.ref_type.as_deref()?;
        (!self.text.is_empty()).then(|| MoRef::new(kind, &self.text))
    }
}

/// A failed call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SoapError {
    /// The server's SOAP fault: its type (`InvalidLogin`, `NoPermission`, …) and message.
    #[error("{name}: {message}")]
    Fault { name: String, message: String },
    /// An HTTP error without a SOAP fault.
    #[error("HTTP {status} from {url}")]
    Http { status: u16, url: String },
    /// No answer: refused, reset, timed out.
    #[error("{0}")]
    Transport(String),
    /// An answer this client cannot read.
    #[error("unexpected answer: {0}")]
    Answer(String),
}

impl SoapError {
    /// The fault's type, when the server answered one.
    pub fn fault(&self) -> Option<&str> {
        match self {
            SoapError::Fault { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// How the vCenter's certificate is checked.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Signed by a root the system trusts.
    System,
    /// Signed by a CA of this PEM file.
    CaFile(std::path::PathBuf),
    /// This certificate (its SHA-256), whoever signed it.
    Pinned([u8; 32]),
    /// Any certificate (a local simulator).
    Insecure,
}

/// The managers a session uses, from `RetrieveServiceContent`.
#[derive(Debug, Clone)]
pub struct ServiceContent {
    pub property_collector: MoRef,
    pub search_index: MoRef,
    pub session_manager: MoRef,
    pub custom_fields_manager: MoRef,
    /// `6.5`, `7.0.3`, … (`about.apiVersion`).
    pub api_version: String,
}

/// A request as sent (Login's without its body), for tests and `-vvvv` debugging.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub body: String,
}

/// A logged-in session with one vCenter.
pub struct Session {
    http: reqwest::Client,
    url: String,
    user: String,
    password: Secret,
    cookie: tokio::sync::Mutex<Option<String>>,
    content: ServiceContent,
    recorded: std::sync::Mutex<VecDeque<Recorded>>,
}

fn envelope(method: &str, this: &MoRef, args: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" "#,
            r#"xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="{xsi}">"#,
            r#"<soapenv:Body><{m} xmlns="urn:vim25">{this}{args}</{m}></soapenv:Body></soapenv:Envelope>"#
        ),
        xsi = XSI,
        m = method,
        this = this.xml("_this"),
        args = args,
    )
}

/// The answer's body element: the method's response, or its fault as an error.
pub fn read_answer(text: &str) -> Result<El, SoapError> {
    let envelope = El::parse(text)?;
    let body = envelope
        .child("Body")
        .ok_or_else(|| SoapError::Answer("no SOAP Body".into()))?;
    let first = body
        .children
        .first()
        .ok_or_else(|| SoapError::Answer("an empty SOAP Body".into()))?;
    if first.name != "Fault" {
        return Ok(first.clone());
    }
    let message = first
        .text_at(&["faultstring"])
        .unwrap_or_default()
        .to_string();
    let name = first
        .child("detail")
        .and_then(|d| d.children.first())
        .map(|d| {
            d.xsi_type.clone().unwrap_or_else(|| {
                d.name
                    .strip_suffix("Fault")
                    .filter(|n| !n.is_empty())
                    .unwrap_or(&d.name)
                    .to_string()
            })
        })
        .unwrap_or_else(|| {
            first
                .text_at(&["faultcode"])
                .unwrap_or("ServerFault")
                .rsplit(':')
                .next()
                .unwrap_or("ServerFault")
                .to_string()
        });
    Err(SoapError::Fault { name, message })
}

/// The session cookie a `Set-Cookie` header sets, `name=value`.
fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.trim_start().starts_with(&format!("{COOKIE}=")))
        .map(|pair| pair.trim().to_string())
}

impl Session {
    /// Reads the service content and logs in.
    pub async fn connect(
        url: &str,
        user: &str,
        password: Secret,
        trust: &Trust,
    ) -> Result<Session, SoapError> {
        let http = client(trust)?;
        let si = MoRef::new("ServiceInstance", "ServiceInstance");
        let (answer, _) = post(
            &http,
            url,
            &envelope("RetrieveServiceContent", &si, ""),
            None,
        )
        .await?;
        let rv = answer
            .child("returnval")
            .ok_or_else(|| SoapError::Answer("RetrieveServiceContent without returnval".into()))?;
        let get = |name: &str| {
            rv.child(name).and_then(El::moref).ok_or_else(|| {
                SoapError::Answer(format!(
                    "the service content has no {name}: is {url} a vCenter?"
                ))
            })
        };
        let content = ServiceContent {
            property_collector: get("propertyCollector")?,
            search_index: get("searchIndex")?,
            session_manager: get("sessionManager")?,
            custom_fields_manager: get("customFieldsManager")?,
            api_version: rv
                .text_at(&["about", "apiVersion"])
                .unwrap_or_default()
                .to_string(),
        };
        let session = Session {
            http,
            url: url.to_string(),
            user: user.to_string(),
            password,
            cookie: tokio::sync::Mutex::new(None),
            content,
            recorded: std::sync::Mutex::new(VecDeque::new()),
        };
        let mut cookie = session.cookie.lock().await;
        *cookie = Some(session.login().await?);
        drop(cookie);
        Ok(session)
    }

    pub fn content(&self) -> &ServiceContent {
        &self.content
    }

    async fn login(&self) -> Result<String, SoapError> {
        let args = format!(
            "<userName>{}</userName><password>{}</password>",
            esc(&self.user),
            esc(self.password.expose())
        );
        self.record("Login", "<redacted>");
        let body = envelope("Login", &self.content.session_manager, &args);
        let (_, cookie) = post(&self.http, &self.url, &body, None).await?;
        cookie.ok_or_else(|| SoapError::Answer("Login set no session cookie".into()))
    }

    fn record(&self, method: &str, body: &str) {
        let mut r = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() == RECORDED {
            r.pop_front();
        }
        r.push_back(Recorded {
            method: method.into(),
            body: body.into(),
        });
    }

    /// The requests sent, oldest first (the last [`RECORDED`]).
    pub fn recorded(&self) -> Vec<Recorded> {
        let r = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        r.iter().cloned().collect()
    }

    /// Calls `method` on `this` with the argument elements `args`; its response element. A
    /// session the server forgot (`NotAuthenticated`: idle expiry, a vCenter restart) is
    /// renewed once.
    pub async fn call(&self, method: &str, this: &MoRef, args: &str) -> Result<El, SoapError> {
        let body = envelope(method, this, args);
        self.record(method, &body);
        let used = self.cookie.lock().await.clone();
        match post(&self.http, &self.url, &body, used.as_deref()).await {
            Err(SoapError::Fault { name, .. }) if name == "NotAuthenticated" => {
                let fresh = {
                    let mut cookie = self.cookie.lock().await;
                    if *cookie == used {
                        tracing::info!(url = %self.url, "vSphere session expired; logging in again");
                        *cookie = Some(self.login().await?);
                    }
                    cookie.clone()
                };
                post(&self.http, &self.url, &body, fresh.as_deref())
                    .await
                    .map(|(el, _)| el)
            }
            other => other.map(|(el, _)| el),
        }
    }

    /// Ends the session (vCenter limits how many a user may hold).
    pub async fn logout(&self) {
        let cookie = self.cookie.lock().await.take();
        if cookie.is_some() {
            let body = envelope("Logout", &self.content.session_manager, "");
            let _ = post(&self.http, &self.url, &body, cookie.as_deref()).await;
        }
    }
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    body: &str,
    cookie: Option<&str>,
) -> Result<(El, Option<String>), SoapError> {
    let mut req = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
        .header("SOAPAction", SOAP_ACTION)
        .body(body.to_string());
    if let Some(c) = cookie {
        req = req.header(reqwest::header::COOKIE, c);
    }
    let answer = req.send().await.map_err(|e| transport(url, &e))?;
    let status = answer.status().as_u16();
    let set = session_cookie(answer.headers());
    let text = answer.text().await.map_err(|e| transport(url, &e))?;
    match read_answer(&text) {
        Err(SoapError::Answer(_)) if status >= 400 => Err(SoapError::Http {
            status,
            url: url.to_string(),
        }),
        other => other.map(|el| (el, set)),
    }
}

fn transport(url: &str, e: &reqwest::Error) -> SoapError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "failed"
    };
    // reqwest's message names the URL and the cause, never a header.
    SoapError::Transport(format!("{url}: {what}: {}", chain(e)))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

fn client(trust: &Trust) -> Result<reqwest::Client, SoapError> {
    let tls = tls_config(trust)?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(CALL_TIMEOUT)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| SoapError::Transport(format!("cannot build the HTTP client: {e}")))
}

fn tls_config(trust: &Trust) -> Result<rustls::ClientConfig, SoapError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| SoapError::Transport(format!("TLS: {e}")))?;
    let config = match trust {
        Trust::System | Trust::CaFile(_) => {
            let mut roots = rustls::RootCertStore::empty();
            if let Trust::CaFile(path) = trust {
                use rustls_pki_types::pem::PemObject;
                let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                    .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| {
                        SoapError::Transport(format!(
                            "cannot read ca_file `{}`: {e}",
                            path.display()
                        ))
                    })?;
                for c in certs {
                    roots.add(c).map_err(|e| {
                        SoapError::Transport(format!("ca_file `{}`: {e}", path.display()))
                    })?;
                }
            } else {
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::Pinned(sha) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                sha: Some(*sha),
                provider,
            }))
            .with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                sha: None,
                provider,
            }))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// Accepts the one certificate of that SHA-256 (or, without one, any), still checking that
/// the server holds its key.
#[derive(Debug)]
struct Pinned {
    sha: Option<[u8; 32]>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use sha2::Digest;
        match self.sha {
            Some(want) if sha2::Sha256::digest(end_entity.as_ref()).as_slice() != want => {
                Err(rustls::Error::General(
                    "the vCenter's certificate is not the one `thumbprint` names".into(),
                ))
            }
            _ => Ok(rustls::client::danger::ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_is_read_by_its_xsi_type() {
        let text = r#"<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Cannot complete login due to an incorrect user name or password.</faultstring><detail><InvalidLoginFault xmlns="urn:vim25" xsi:type="InvalidLogin"></InvalidLoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
        let e = read_answer(text).unwrap_err();
        assert_eq!(e.fault(), Some("InvalidLogin"));
        assert!(e.to_string().contains("incorrect user name"), "{e}");
    }

    #[test]
    fn a_fault_without_xsi_type_is_named_by_its_element() {
        let text = r#"<Envelope><Body><Fault><faultstring>x</faultstring><detail><NoPermissionFault/></detail></Fault></Body></Envelope>"#;
        assert_eq!(read_answer(text).unwrap_err().fault(), Some("NoPermission"));
    }

    #[test]
    fn an_element_read_is_written_back_as_it_was() {
        let text = r#"<device xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="VirtualE1000"><key>4000</key><deviceInfo><label>Network adapter 1</label></deviceInfo><backing xsi:type="VirtualEthernetCardNetworkBackingInfo"><deviceName>VM Network</deviceName><network type="Network">network-7</network></backing><value xsi:type="xsd:int">1</value></device>"#;
        let el = El::parse(text).unwrap();
        assert_eq!(
            el.to_xml(),
            r#"<device xsi:type="VirtualE1000"><key>4000</key><deviceInfo><label>Network adapter 1</label></deviceInfo><backing xsi:type="VirtualEthernetCardNetworkBackingInfo"><deviceName>VM Network</deviceName><network type="Network">network-7</network></backing><value xsi:type="xsd:int">1</value></device>"#
        );
        let swapped = el.to_xml_with(|c| (c.name == "backing").then(|| "<backing/>".to_string()));
        assert!(swapped.contains("<key>4000</key><deviceInfo><label>Network adapter 1</label></deviceInfo><backing/><value"), "{swapped}");
    }

    #[test]
    fn values_are_escaped() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;"
        );
        let r = MoRef::new("Folder", "group-<1>");
        assert_eq!(
            r.xml("folder"),
            r#"<folder type="Folder">group-&lt;1&gt;</folder>"#
        );
    }

    #[test]
    fn the_session_cookie_is_taken_from_set_cookie() {
        let mut h = reqwest::header::HeaderMap::new();
        h.append(
            reqwest::header::SET_COOKIE,
            "other=1; Path=/".parse().unwrap(),
        );
        h.append(
            reqwest::header::SET_COOKIE,
            r#"vmware_soap_session="52ab"; Path=/; HttpOnly; Secure;"#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            session_cookie(&h).as_deref(),
            Some(r#"vmware_soap_session="52ab""#)
        );
    }

    #[test]
    fn not_xml_is_an_answer_error_never_a_panic() {
        for text in [
            "",
            "<",
            "<a><b></a>",
            "<Envelope/>",
            "<Envelope><Body/></Envelope>",
        ] {
            assert!(
                matches!(read_answer(text), Err(SoapError::Answer(_))),
                "{text}"
            );
        }
    }
}
