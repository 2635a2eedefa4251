//! The headers that authenticate every request: the ACL token and HTTP
//! basic auth, marked sensitive so that no debug output shows them. A
//! token read from a file is read again whenever the file's stamp (inode,
//! size, modification and change times) moves (checked before each
//! request: one `stat`),
//! so a rotated or restored token takes over without a restart.
//!
//! Nothing here ever logs the token: only the file's path and what
//! happened to it.

use std::path::PathBuf;
use std::sync::Mutex;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use super::transport::TransportError;
use crate::config::ConsulConfig;
use crate::file_edits::{Stamp, stamp};
use crate::token_file;

const TOKEN_HEADER: &str = "x-consul-token";
/// The anonymous token's secret ID, fixed by Consul (not a secret).
const ANONYMOUS: &str = "anonymous";

/// The credentials of one transport.
pub struct Credentials {
    current: Mutex<Current>,
}

struct Current {
    headers: HeaderMap,
    token_file: Option<TokenFile>,
    /// Consul's default policy is deny: while no token is set, requests
    /// name the anonymous token, because Consul says which results it hid
    /// (`X-Consul-Results-Filtered-By-ACLs`) only to a request that names
    /// a token. With no token at all a refused read looks like an empty one.
    name_anonymous: bool,
}

/// Where the token came from, and the file's stamp when it was read.
struct TokenFile {
    path: PathBuf,
    stamp: Option<Stamp>,
}

impl Credentials {
    pub fn new(config: &ConsulConfig) -> Result<Credentials, TransportError> {
        let mut headers = HeaderMap::new();
        if let Some(token) = &config.token {
            headers.insert(TOKEN_HEADER, sensitive(token.expose(), "token")?);
        }
        if let Some(auth) = &config.auth {
            let pair = format!(
                "{}:{}",
                auth.username,
                auth.password.as_deref().unwrap_or("")
            );
            let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
            let value = sensitive(&format!("Basic {encoded}"), "basic auth")?;
            headers.insert(AUTHORIZATION, value);
        }
        let token_file = config.token_file.as_ref().map(|path| TokenFile {
            stamp: stamp(path),
            path: path.clone(),
        });
        Ok(Credentials {
            current: Mutex::new(Current {
                headers,
                token_file,
                name_anonymous: false,
            }),
        })
    }

    /// The headers for the next request, with the token file read again
    /// first if it changed.
    pub fn current(&self) -> HeaderMap {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        current.refresh();
        let mut headers = current.headers.clone();
        if current.name_anonymous && !headers.contains_key(TOKEN_HEADER) {
            headers.insert(TOKEN_HEADER, HeaderValue::from_static(ANONYMOUS));
        }
        headers
    }

    /// Notes Consul's default ACL policy from a reply's headers. Returns
    /// true, once, when the policy is deny and the request carried no
    /// token: from then on requests name the anonymous token, and the
    /// caller sends this one again so that its reply says whether results
    /// were hidden.
    pub fn note_policy(&self, reply_headers: &HeaderMap) -> bool {
        let deny = reply_headers
            .get("x-consul-default-acl-policy")
            .is_some_and(|v| v.as_bytes() == b"deny");
        if !deny {
            return false;
        }
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.name_anonymous || current.headers.contains_key(TOKEN_HEADER) {
            return false;
        }
        current.name_anonymous = true;
        tracing::warn!(
            "consul's default ACL policy is deny and no token is set (-consul-token, -consul-token-file, CONSUL_HTTP_TOKEN): reading as the anonymous token; a service or node read whose results it may not see is refused, not rendered empty"
        );
        true
    }
}

impl Current {
    fn refresh(&mut self) {
        let Some(file) = &mut self.token_file else {
            return;
        };
        let now = stamp(&file.path);
        if now == file.stamp {
            return;
        }
        file.stamp = now;
        let path = file.path.display().to_string();
        match token_file::read(&file.path) {
            Ok(Some(token)) => match sensitive(token.expose(), "token") {
                Ok(value) => {
                    self.headers.insert(TOKEN_HEADER, value);
                    tracing::info!(file = path, "the token file changed: using its token");
                }
                Err(error) => {
                    tracing::warn!(
                        file = path,
                        "{error} in the changed token file; keeping the last token"
                    );
                }
            },
            Ok(None) => {
                self.headers.remove(TOKEN_HEADER);
                tracing::warn!(
                    file = path,
                    "the token file is empty now: requests carry no token"
                );
            }
            Err(error) => {
                tracing::warn!(
                    file = path,
                    "cannot read the changed token file ({error}); keeping the last token"
                );
            }
        }
    }
}

fn sensitive(text: &str, what: &'static str) -> Result<HeaderValue, TransportError> {
    let mut value = HeaderValue::from_str(text).map_err(|_| TransportError::Header(what))?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Token;

    fn token_of(credentials: &Credentials) -> Option<String> {
        let headers = credentials.current();
        let value = headers.get(TOKEN_HEADER)?;
        assert!(value.is_sensitive());
        Some(value.to_str().unwrap().to_owned())
    }

    #[test]
    fn a_token_file_is_read_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let mut config = crate::config::sample().consul;
        config.token = token_file::read(&path).unwrap();
        config.token_file = Some(path.clone());
        let credentials = Credentials::new(&config).unwrap();
        assert_eq!(token_of(&credentials).as_deref(), Some("first"));
        std::fs::write(&path, "second-token\n").unwrap();
        assert_eq!(token_of(&credentials).as_deref(), Some("second-token"));
        // Rotated at once to a token of the same length: still seen.
        std::fs::write(&path, "third-token1\n").unwrap();
        assert_eq!(token_of(&credentials).as_deref(), Some("third-token1"));
        // Unreadable: the last token stays.
        std::fs::remove_file(&path).unwrap();
        assert_eq!(token_of(&credentials).as_deref(), Some("third-token1"));
        // A token that cannot be a header value is refused, the last kept.
        std::fs::write(&path, "bad\u{1}token").unwrap();
        assert_eq!(token_of(&credentials).as_deref(), Some("third-token1"));
        std::fs::write(&path, "").unwrap();
        assert_eq!(token_of(&credentials), None, "an empty file means no token");
    }

    #[test]
    fn a_token_not_from_a_file_never_changes() {
        let mut config = crate::config::sample().consul;
        config.token = Some(Token::new("fixed".into()));
        let credentials = Credentials::new(&config).unwrap();
        assert_eq!(token_of(&credentials).as_deref(), Some("fixed"));
    }
}
