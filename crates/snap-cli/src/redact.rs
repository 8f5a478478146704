//! Database URLs as they may be shown: passwords (and NATS tokens) hidden wherever a message
//! would repeat them.

use std::fmt::Write as _;

/// Where the user-info of a URL ends, as a byte offset into `rest` (the URL after `://`):
/// the last `@` before the first `/`, else (a password holding a raw `/`) the last `@` of
/// all. Errs on hiding too much: an `@` in the path or query of a URL without user-info makes
/// the text before it look like user-info.
fn user_info_end(rest: &str) -> Option<usize> {
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    authority.rfind('@').or_else(|| rest.rfind('@'))
}

/// `url` for display: the password (`user:PASSWORD@`, or a `password=` query parameter) as
/// `***`, the user name kept; a `sqlite://` path, or text that is no URL, as it is.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    if url[..scheme_end].ends_with("sqlite") {
        return url.to_owned();
    }
    if let Some(servers) = nats_servers(url) {
        return servers
            .into_iter()
            .map(redact_url)
            .collect::<Vec<_>>()
            .join(",");
    }
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let mut shown = scheme.to_owned();
    let mut host_and_path = rest;
    if let Some(at) = user_info_end(rest) {
        let user_info = &rest[..at];
        match user_info.split_once(':') {
            Some((user, _password)) => {
                let _ = write!(shown, "{user}:***");
            }
            // A NATS URL's user-info without a colon is a token.
            None if is_nats(url) => shown.push_str("***"),
            None => shown.push_str(user_info),
        }
        shown.push('@');
        host_and_path = &rest[at + 1..];
    }
    let Some((path, query)) = host_and_path.split_once('?') else {
        shown.push_str(host_and_path);
        return shown;
    };
    shown.push_str(path);
    shown.push('?');
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _value)) if key == "password" => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    shown.push_str(&pairs.join("&"));
    shown
}

/// Whether `url` names a NATS server (`nats://`, `tls://`).
pub(crate) fn is_nats(url: &str) -> bool {
    url.starts_with("nats://") || url.starts_with("tls://")
}

/// The servers of a NATS URL list (`nats://a:4222,nats://b:4222`), when it has several.
fn nats_servers(url: &str) -> Option<Vec<&str>> {
    (is_nats(url) && url.contains(',')).then(|| url.split(',').map(str::trim).collect())
}

/// Percent-decodes `text` (and, for a query value, `+` as a space).
fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (b'+', _) if plus_is_space => {
                decoded.push(b' ');
                i += 1;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The passwords a URL carries, as written and decoded: what [`redact_url`] hides.
fn secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Some(scheme_end) = url.find("://") else {
        return found;
    };
    if url[..scheme_end].ends_with("sqlite") {
        return found;
    }
    if let Some(servers) = nats_servers(url) {
        return servers.into_iter().flat_map(secrets).collect();
    }
    let mut rest = &url[scheme_end + 3..];
    if let Some(at) = user_info_end(rest) {
        let user_info = &rest[..at];
        let password = match user_info.split_once(':') {
            Some((_user, password)) => Some(password),
            None if is_nats(url) => Some(user_info),
            None => None,
        };
        if let Some(password) = password {
            found.push(password.to_owned());
            found.push(percent_decode(password, false));
        }
        rest = &rest[at + 1..];
    }
    if let Some((_path, query)) = rest.split_once('?') {
        for pair in query.split('&') {
            if let Some(("password", value)) = pair.split_once('=') {
                found.push(value.to_owned());
                found.push(percent_decode(value, true));
            }
        }
    }
    found.retain(|secret| !secret.is_empty());
    found
}

/// The URL an argument holds (`URL` or `--flag=URL`), if it holds one.
pub(crate) fn url_in_argument(argument: &str) -> Option<&str> {
    if !argument.contains("://") {
        return None;
    }
    let value = match argument.split_once('=') {
        Some((flag, value)) if flag.starts_with('-') && !flag.contains("://") => value,
        _ => argument,
    };
    Some(value)
}

/// `message` fit to print: each of `urls` shown by [`redact_url`], and their passwords
/// replaced by `***` wherever else they appear (an error that quotes part of a URL).
pub(crate) fn scrub(message: &str, urls: &[String]) -> String {
    let mut hidden: Vec<String> = urls.iter().flat_map(|url| secrets(url)).collect();
    // Longer first, so a password that contains another is hidden whole.
    hidden.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    let hide = |text: &str| {
        hidden.iter().fold(text.to_owned(), |text, secret| {
            text.replace(secret.as_str(), "***")
        })
    };
    let mut shown = String::new();
    let mut rest = message;
    // The text between the URLs loses the passwords; the URLs go out redacted (a password
    // that is also the user name or scheme does not hide those).
    while let Some((at, url)) = urls
        .iter()
        .filter_map(|url| rest.find(url.as_str()).map(|at| (at, url)))
        .min_by_key(|&(at, url)| (at, std::cmp::Reverse(url.len())))
    {
        shown.push_str(&hide(&rest[..at]));
        shown.push_str(&redact_url(url));
        rest = &rest[at + url.len()..];
    }
    shown.push_str(&hide(rest));
    shown
}

#[cfg(test)]
mod tests {
    use super::{redact_url, scrub, secrets, url_in_argument};

    #[test]
    fn a_url_without_a_password_is_shown_as_it_is() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/test",
            "postgresql://localhost/db?sslmode=require",
            "postgres://[::1]:5432/db",
            "postgres://h:5432/db",
            "not a url",
        ] {
            assert_eq!(redact_url(url), url);
            assert!(secrets(url).is_empty(), "{url}");
        }
    }

    #[test]
    fn the_password_is_hidden_and_the_user_kept() {
        for (url, shown) in [
            (
                "postgres://postgres:s3cret@127.0.0.1:5432/test",
                "postgres://postgres:***@127.0.0.1:5432/test",
            ),
            ("postgres://u:@h/db", "postgres://u:***@h/db"),
            ("mysql://u:pw@localhost/x", "mysql://u:***@localhost/x"),
            // `@` percent-encoded, or raw, in the password.
            (
                "postgres://u:p%40ss@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgres://u:p@ss@h:5432/db", "postgres://u:***@h:5432/db"),
            // A raw `/`, `?` or `:` in the password.
            ("postgres://u:a/b@h/db", "postgres://u:***@h/db"),
            ("postgres://u:a?b:c@h/db", "postgres://u:***@h/db"),
            // An `@` after the host is not user-info.
            (
                "postgres://u:pw@h/db?sslrootcert=/certs/a@b.pem",
                "postgres://u:***@h/db?sslrootcert=/certs/a@b.pem",
            ),
            // The password as a query parameter.
            (
                "postgres://u@h/db?sslmode=disable&password=pw&application_name=x",
                "postgres://u@h/db?sslmode=disable&password=***&application_name=x",
            ),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn sqlite_paths_are_untouched() {
        for url in [
            "sqlite:///var/data/user:pw@host.db",
            "sqlite://relative/a@b.db",
            "sqlite://",
        ] {
            assert_eq!(redact_url(url), url);
            assert!(secrets(url).is_empty(), "{url}");
        }
    }

    #[test]
    fn the_secrets_are_the_password_as_written_and_decoded() {
        assert_eq!(
            secrets("postgres://u:p%40ss@h/db"),
            ["p%40ss", "p@ss"].map(String::from)
        );
        assert_eq!(
            secrets("postgres://u@h/db?password=a+b%21"),
            ["a+b%21", "a b!"].map(String::from)
        );
        assert!(secrets("postgres://u:@h/db").is_empty());
    }

    #[test]
    fn a_url_argument_is_found_with_or_without_its_flag() {
        assert_eq!(
            url_in_argument("--database-url=postgres://u:pw@h/db"),
            Some("postgres://u:pw@h/db")
        );
        assert_eq!(
            url_in_argument("postgres://u:pw@h/db?a=b"),
            Some("postgres://u:pw@h/db?a=b")
        );
        assert_eq!(url_in_argument("--schema=public"), None);
        assert_eq!(url_in_argument("stats"), None);
    }

    #[test]
    fn a_message_loses_the_passwords_of_the_urls_given() {
        let urls = [
            "postgres://postgres:pw%21@h/db".to_owned(),
            "sqlite:///tmp/a.db".to_owned(),
        ];
        assert_eq!(
            scrub(
                "unexpected argument 'postgres://postgres:pw%21@h/db' found",
                &urls
            ),
            "unexpected argument 'postgres://postgres:***@h/db' found"
        );
        assert_eq!(
            scrub("password authentication failed: pw! and pw%21", &urls),
            "password authentication failed: *** and ***"
        );
        // A password that is also the user name hides neither in the URL shown.
        let same = ["postgres://postgres:postgres@h/db".to_owned()];
        assert_eq!(
            scrub("cannot open postgres://postgres:postgres@h/db", &same),
            "cannot open postgres://postgres:***@h/db"
        );
        assert_eq!(
            scrub("no database file at /tmp/a.db", &urls),
            "no database file at /tmp/a.db"
        );
    }
}
