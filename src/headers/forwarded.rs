//! `X-Forwarded-For` and `Forwarded` (RFC 7239): the client's address appended to what came
//! before, on a header map or written straight into an upstream head, the address formatted
//! on the stack (`IpText`).

use super::X_FORWARDED_FOR;
use bytes::{BufMut, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use std::net::{IpAddr, SocketAddr};

/// Appends the client's address to `X-Forwarded-For` and `Forwarded`.
pub fn add_forwarded(headers: &mut HeaderMap, remote: SocketAddr) {
    let ip = IpText::of(remote.ip());
    let xff = forwarded_for(headers.get(&X_FORWARDED_FOR), &ip);
    let fwd = forwarded(headers.get(header::FORWARDED), &ip);
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if let Some(v) = fwd {
        headers.insert(header::FORWARDED, v);
    }
}

/// `prev` (if any), then `ip`.
fn forwarded_for(prev: Option<&HeaderValue>, ip: &IpText) -> Option<HeaderValue> {
    let mut xff = ListValue::after(prev);
    push_forwarded_for(&mut xff.0, ip);
    xff.finish()
}

/// `prev` (if any), then `for=ip;proto=http`.
fn forwarded(prev: Option<&HeaderValue>, ip: &IpText) -> Option<HeaderValue> {
    let mut fwd = ListValue::after(prev);
    push_forwarded(&mut fwd.0, ip);
    fwd.finish()
}

/// Writes the value of `X-Forwarded-For` with `ip` added to the client's `prev` (if any):
/// what [`add_forwarded`] sets, written straight into an upstream request's head. Always a
/// valid header value: `prev` is one, and `, ` and an address are printable ASCII.
pub fn write_forwarded_for(out: &mut impl BufMut, prev: Option<&HeaderValue>, ip: &IpText) {
    put_list_prefix(out, prev);
    push_forwarded_for(out, ip);
}

/// Writes the value of `Forwarded` with this hop's element added to `prev` (if any), as
/// [`add_forwarded`] sets it.
pub fn write_forwarded(out: &mut impl BufMut, prev: Option<&HeaderValue>, ip: &IpText) {
    put_list_prefix(out, prev);
    push_forwarded(out, ip);
}

/// The previous value of a list header and `, ` (nothing when there is none or it is empty).
fn put_list_prefix(out: &mut impl BufMut, prev: Option<&HeaderValue>) {
    if let Some(prev) = prev.filter(|p| !p.is_empty()) {
        out.put_slice(prev.as_bytes());
        out.put_slice(b", ");
    }
}

/// `X-Forwarded-For`'s element for `ip`: the address.
fn push_forwarded_for(out: &mut impl BufMut, ip: &IpText) {
    out.put_slice(ip.as_bytes());
}

/// `Forwarded`'s element for `ip`: `for=ip;proto=http` (RFC 7239, an IPv6 address quoted and
/// bracketed).
fn push_forwarded(out: &mut impl BufMut, ip: &IpText) {
    if ip.v6 {
        out.put_slice(b"for=\"[");
        out.put_slice(ip.as_bytes());
        out.put_slice(b"]\";proto=http");
    } else {
        out.put_slice(b"for=");
        out.put_slice(ip.as_bytes());
        out.put_slice(b";proto=http");
    }
}

/// An address as text, on the stack: IPv4 by hand (the common case, and `Display` is slow),
/// IPv6 through `Display` (at most 45 characters, with an embedded IPv4 address).
pub struct IpText {
    buf: [u8; 48],
    len: usize,
    v6: bool,
}

impl IpText {
    pub fn of(ip: IpAddr) -> IpText {
        let mut t = IpText {
            buf: [0; 48],
            len: 0,
            v6: ip.is_ipv6(),
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        t.push(b'.');
                    }
                    if octet >= 100 {
                        t.push(b'0' + octet / 100);
                    }
                    if octet >= 10 {
                        t.push(b'0' + octet / 10 % 10);
                    }
                    t.push(b'0' + octet % 10);
                }
            }
            IpAddr::V6(v6) => {
                use std::io::Write;
                let mut cursor = std::io::Cursor::new(&mut t.buf[..]);
                // 48 bytes hold any IPv6 address's text; a failure would leave it cut short.
                let _ = write!(cursor, "{v6}");
                t.len = usize::try_from(cursor.position()).unwrap_or(0);
            }
        }
        t
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }
}

/// A comma-separated header value being built: the previous value (if any) and `, `, then the
/// caller's element. One allocation, no `fmt`.
struct ListValue(BytesMut);

impl ListValue {
    fn after(prev: Option<&HeaderValue>) -> Self {
        let len = prev.map_or(0, HeaderValue::len);
        let mut buf = BytesMut::with_capacity(len + 64);
        put_list_prefix(&mut buf, prev);
        ListValue(buf)
    }

    fn finish(self) -> Option<HeaderValue> {
        HeaderValue::from_maybe_shared(self.0.freeze()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        let cases = [
            "0.0.0.0",
            "1.20.100.9",
            "10.0.0.1",
            "99.100.199.200",
            "255.255.255.255",
            "::1",
            "2001:db8::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:255.255.255.255",
            "1:2:3:4:5:6:7:8",
        ];
        for text in cases {
            let ip: IpAddr = text.parse().unwrap();
            let got = IpText::of(ip);
            assert_eq!(got.as_bytes(), ip.to_string().as_bytes(), "{text}");
            assert_eq!(got.v6, ip.is_ipv6());
        }
    }

    #[test]
    fn forwarded_values_follow_the_client() {
        // Same client twice, another, then the first again: each gets its own address.
        for remote in [
            "192.0.2.7:1",
            "192.0.2.7:2",
            "198.51.100.3:1",
            "192.0.2.7:3",
            "[::1]:1",
        ] {
            let remote: SocketAddr = remote.parse().unwrap();
            let mut h = HeaderMap::new();
            add_forwarded(&mut h, remote);
            let ip = remote.ip().to_string();
            assert_eq!(h[X_FORWARDED_FOR], ip.as_str());
            let want = match remote.ip() {
                IpAddr::V4(_) => format!("for={ip};proto=http"),
                IpAddr::V6(_) => format!("for=\"[{ip}]\";proto=http"),
            };
            assert_eq!(h[header::FORWARDED], want.as_str());
        }
    }

    #[test]
    fn forwarded_values_follow_the_previous_values() {
        // The same client with the same, other, no and again the same previous values, in
        // turn: each answer is the previous values followed by the client.
        let remote: SocketAddr = "192.0.2.7:1".parse().unwrap();
        for prev in [
            Some("10.0.0.1"),
            Some("10.0.0.1"),
            Some("10.0.0.2"),
            None,
            Some("10.0.0.2"),
            Some("10.0.0.1"),
        ] {
            let mut h = HeaderMap::new();
            if let Some(p) = prev {
                h.insert(X_FORWARDED_FOR, HeaderValue::from_static(p));
                h.insert(
                    header::FORWARDED,
                    HeaderValue::from_str(&format!("for={p}")).unwrap(),
                );
            }
            add_forwarded(&mut h, remote);
            let (xff, fwd) = match prev {
                Some(p) => (
                    format!("{p}, 192.0.2.7"),
                    format!("for={p}, for=192.0.2.7;proto=http"),
                ),
                None => ("192.0.2.7".into(), "for=192.0.2.7;proto=http".into()),
            };
            assert_eq!(h[X_FORWARDED_FOR], xff.as_str(), "{prev:?}");
            assert_eq!(h[header::FORWARDED], fwd.as_str(), "{prev:?}");
        }
    }

    /// Client address, X-Forwarded-For and Forwarded before, and both after.
    type ForwardedRow = (
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
        &'static str,
    );

    #[test]
    fn forwarded_values_by_table() {
        let rows: [ForwardedRow; 4] = [
            (
                "192.0.2.7:4000",
                None,
                None,
                "192.0.2.7",
                "for=192.0.2.7;proto=http",
            ),
            ("0.0.0.0:1", None, None, "0.0.0.0", "for=0.0.0.0;proto=http"),
            (
                "255.10.0.1:1",
                Some("203.0.113.9"),
                Some("for=203.0.113.9"),
                "203.0.113.9, 255.10.0.1",
                "for=203.0.113.9, for=255.10.0.1;proto=http",
            ),
            (
                "[2001:db8::1]:443",
                None,
                None,
                "2001:db8::1",
                "for=\"[2001:db8::1]\";proto=http",
            ),
        ];
        for (remote, xff, fwd, want_xff, want_fwd) in rows {
            let mut h = HeaderMap::new();
            if let Some(v) = xff {
                h.insert(X_FORWARDED_FOR, HeaderValue::from_static(v));
            }
            if let Some(v) = fwd {
                h.insert(header::FORWARDED, HeaderValue::from_static(v));
            }
            add_forwarded(&mut h, remote.parse().unwrap());
            assert_eq!(h[X_FORWARDED_FOR], want_xff, "{remote}");
            assert_eq!(h[header::FORWARDED], want_fwd, "{remote}");
        }
    }
}
