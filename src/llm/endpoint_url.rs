//! Checking an endpoint's base URL before any request is sent.
//!
//! [`url_problem`] accepts what an OpenAI-compatible client can call: `http://` or
//! `https://`, a host (a name, an IPv4 address, or an IPv6 address in brackets) and an
//! optional port from 1 to 65535. It says what is wrong with anything else, quoting the
//! part written, so `validate` rejects a URL that could never be reached instead of a run
//! failing on its first request. It does no I/O: whether a server answers is for the run
//! to find out.

use std::net::Ipv6Addr;

/// What an endpoint URL should look like, for messages.
pub const EXPECTED: &str = "an `http://` or `https://` URL with a host and an optional port, e.g. `http://127.0.0.1:8000/v1`";

/// Why `url` cannot be an endpoint's base URL; `None` when it can.
pub fn url_problem(url: &str) -> Option<String> {
    if url.trim().is_empty() {
        return Some("the URL is empty".into());
    }
    if let Some(c) = url.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!("`{url}` contains {c:?}, which a URL cannot hold"));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some(format!("`{url}` has no scheme: write `http://{url}`"));
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return Some(format!(
            "`{url}` is not an HTTP URL: its scheme is `{scheme}`"
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // `user:password@` is allowed before the host.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.is_empty() {
        return Some(format!("`{url}` names no host"));
    }
    let (host, port) = if let Some(inner) = host_port.strip_prefix('[') {
        let Some((address, after)) = inner.split_once(']') else {
            return Some(format!(
                "`{url}` opens `[` before its host but never closes it"
            ));
        };
        if address.parse::<Ipv6Addr>().is_err() {
            return Some(format!("`[{address}]` in `{url}` is not an IPv6 address"));
        }
        match after {
            "" => (address, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (address, Some(port)),
                None => {
                    return Some(format!(
                        "`{url}` has `{after}` after its IPv6 address, where only `:PORT` can be"
                    ));
                }
            },
        }
    } else if host_port.contains(['[', ']']) {
        return Some(format!(
            "`{url}` has an unbalanced bracket: only an IPv6 host is written in `[…]`"
        ));
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Some(format!("`{url}` names no host"));
    }
    if let Some(c) = host
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | ':' | '%')))
    {
        return Some(format!("the host `{host}` in `{url}` contains `{c}`"));
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p));
        if !valid {
            return Some(format!(
                "`{port}` in `{url}` is not a port: ports are 1 to 65535"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reachable_urls_pass() {
        for url in [
            "http://127.0.0.1:8000/v1",
            "https://api.example.com/v1",
            "http://localhost/v1",
            "http://[::1]:8000/v1",
            "http://[fe80::1]/v1",
            "http://user:secret@host:1/v1",
            "HTTP://host",
        ] {
            assert_eq!(url_problem(url), None, "{url}");
        }
    }

    #[test]
    fn every_unusable_url_says_which_part() {
        for (url, part) in [
            ("", "empty"),
            ("ftp://x/v1", "scheme is `ftp`"),
            ("127.0.0.1:8000/v1", "no scheme"),
            ("http:///v1", "no host"),
            ("http://h:99999/v1", "`99999`"),
            ("http://h:0/v1", "`0`"),
            ("http://h:/v1", "is not a port"),
            ("http://h:80a/v1", "`80a`"),
            ("http://[::1/v1", "never closes"),
            ("http://::1]/v1", "unbalanced"),
            ("http://[zz]/v1", "not an IPv6"),
            ("http://[::1]x/v1", "after its IPv6"),
            ("http://a b/v1", "' '"),
            ("http://a,b/v1", "contains `,`"),
        ] {
            let problem = url_problem(url).unwrap_or_else(|| panic!("{url} passed"));
            assert!(problem.contains(part), "{url}: {problem}");
        }
    }
}
