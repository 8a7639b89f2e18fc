//! A minimal browser: cookies by name, redirects followed by hand, and the test provider's
//! sign-in form filled in.

use std::collections::HashMap;

use http::StatusCode;
use http::header::{COOKIE, LOCATION, SET_COOKIE};
use url::Url;

/// A minimal browser for the provider's pages: no redirects followed, cookies by name.
pub struct Browser {
    pub http: reqwest::Client,
    pub jar: HashMap<String, String>,
}

impl Browser {
    pub fn new() -> Browser {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            http,
            jar: HashMap::new(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn keep_cookies(&mut self, headers: &reqwest::header::HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let text = value.to_str().unwrap();
            let (name, value) = text.split(';').next().unwrap().split_once('=').unwrap();
            if value.is_empty() || text.contains("1970") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    /// Signs in at the provider from the authorization URL and returns the callback URL
    /// (path and query on the gateway) once a redirect reaches `redirect_uri`.
    pub async fn sign_in(&mut self, authorize: &str, user: &str, redirect_uri: &str) -> String {
        let mut url = Url::parse(authorize).unwrap();
        for _ in 0..10 {
            let response = self.send_with_cookies(self.http.get(url.as_str())).await;
            let mut status = response.status();
            let mut headers = response.headers().clone();
            if status == StatusCode::OK && url.path().starts_with("/interaction/") {
                let form = [
                    ("login", user.to_owned()),
                    ("password", format!("{user}-password")),
                ];
                let login = url.join(&format!("{}/login", url.path())).unwrap();
                let response = self
                    .send_with_cookies(self.http.post(login.as_str()).form(&form))
                    .await;
                status = response.status();
                headers = response.headers().clone();
            }
            assert!(
                status.is_redirection(),
                "provider answered {status} at {url}"
            );
            let next = url.join(headers[LOCATION].to_str().unwrap()).unwrap();
            if next.as_str().starts_with(redirect_uri) {
                return format!("{}?{}", next.path(), next.query().unwrap_or_default());
            }
            url = next;
        }
        panic!("too many redirects at the provider");
    }

    /// Sends `request` with this browser's cookies and keeps the ones the answer sets.
    async fn send_with_cookies(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let response = request
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(response.headers());
        response
    }
}

impl Browser {
    /// One request with this browser's cookies; no redirect is followed.
    pub async fn get(&mut self, url: &str, accept: &str) -> reqwest::Response {
        self.get_with_headers(url, accept, &[]).await
    }

    /// [`get`](Self::get) with more request headers.
    pub async fn get_with_headers(
        &mut self,
        url: &str,
        accept: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        self.send_with_headers(reqwest::Method::GET, url, accept, headers)
            .await
    }

    /// An empty POST to `url` with this browser's cookies and `headers`; no redirect is followed.
    pub async fn post_with_headers(
        &mut self,
        url: &str,
        accept: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        self.send_with_headers(reqwest::Method::POST, url, accept, headers)
            .await
    }

    async fn send_with_headers(
        &mut self,
        method: reqwest::Method,
        url: &str,
        accept: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.http.request(method, url).header("accept", accept);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send_with_cookies(request).await
    }

    /// Posts `fields` as a form to `url` with this browser's cookies, asking for `accept`; no
    /// redirect is followed.
    pub async fn post_form(
        &mut self,
        url: &str,
        accept: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let request = self.http.post(url).header("accept", accept).form(fields);
        self.send_with_cookies(request).await
    }

    /// The gateway's session cookie, which a login leaves in the jar.
    pub fn session_cookie(&self) -> String {
        self.jar
            .get(SESSION_COOKIE)
            .cloned()
            .expect("session cookie")
    }

    /// Signs in as `user` at the provider `to_provider` (the gateway's redirect) points at and
    /// returns the gateway's answer to the callback.
    pub async fn complete_login(
        &mut self,
        gateway: &str,
        to_provider: reqwest::Response,
        user: &str,
    ) -> reqwest::Response {
        assert_eq!(to_provider.status(), StatusCode::FOUND);
        let authorize = to_provider.headers()[LOCATION].to_str().unwrap().to_owned();
        let redirect_uri = format!("{gateway}/oauth2/callback");
        let callback = self.sign_in(&authorize, user, &redirect_uri).await;
        self.get(&format!("{gateway}{callback}"), HTML).await
    }

    /// Opens `path` on the gateway as a browser would and logs in as `user` at the test
    /// provider on the way; returns the final response for `path`.
    pub async fn login_through(
        &mut self,
        gateway: &str,
        path: &str,
        user: &str,
    ) -> reqwest::Response {
        let first = self.get(&format!("{gateway}{path}"), HTML).await;
        assert_eq!(
            first.status(),
            StatusCode::FOUND,
            "an anonymous browser is sent to log in"
        );
        let start = first.headers()[LOCATION].to_str().unwrap().to_owned();
        assert!(start.starts_with("/oauth2/start?rd="), "{start}");
        let mut to_provider = self.get(&format!("{gateway}{start}"), HTML).await;
        if to_provider.status() == StatusCode::OK {
            // The login page with a choice: click the first provider's button.
            let page = to_provider.text().await.unwrap();
            let link = provider_links(&page)
                .into_iter()
                .next()
                .expect("a provider button on the login page");
            to_provider = self.get(&format!("{gateway}{link}"), HTML).await;
        }
        let back = self.complete_login(gateway, to_provider, user).await;
        assert_eq!(
            back.status(),
            StatusCode::FOUND,
            "the callback redirects to rd"
        );
        let rd = back.headers()[LOCATION].to_str().unwrap().to_owned();
        assert_eq!(rd, path);
        self.get(&format!("{gateway}{rd}"), HTML).await
    }
}

pub const HTML: &str = "text/html,application/xhtml+xml";

/// The name of the gateway's session cookie.
pub const SESSION_COOKIE: &str = "_portcullis";

/// Whether `response` is an HTML page.
pub fn is_html(response: &reqwest::Response) -> bool {
    response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html")
}

/// The `href`s of the login page's provider buttons, HTML entities decoded.
pub fn provider_links(html: &str) -> Vec<String> {
    let marker = "class=\"provider\" href=\"";
    html.split(marker)
        .skip(1)
        .map(|rest| {
            rest.split('"')
                .next()
                .unwrap()
                .replace("&#x2f;", "/")
                .replace("&#x3d;", "=")
                .replace("&amp;", "&")
        })
        .collect()
}

/// The value of `<input ... name="NAME" value="...">` in a page, HTML entities decoded.
pub fn hidden_field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let at = html.find(&marker)? + marker.len();
    let raw = html[at..].split('"').next()?;
    Some(
        raw.replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}
