//! The `Coopr-*` header check (`AbstractAuthHandler`): who is calling, in which tenant. Runs after
//! routing, so unknown paths and wrong methods never reach it. `Coopr-ApiKey` is ignored.

use http::HeaderMap;

use super::Shared;
use super::reply::{self, Resp};

pub(crate) const USER_HEADER: &str = "coopr-userid";
pub(crate) const TENANT_HEADER: &str = "coopr-tenantid";

/// The superadmin tenant's name and id.
pub(crate) const SUPERADMIN: &str = "superadmin";

/// The caller of an external route.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub user: String,
    pub tenant_id: String,
}

impl Caller {
    /// User `admin` is the tenant admin.
    pub(crate) fn is_admin(&self) -> bool {
        self.user == "admin"
    }

    /// User `admin` in tenant `superadmin`.
    pub(crate) fn is_superadmin(&self) -> bool {
        self.is_admin() && self.tenant_id == SUPERADMIN
    }

    /// Whether this caller may see a cluster owned by `owner` in tenant `tenant_id`.
    pub(crate) fn sees(&self, tenant_id: &str, owner: &str) -> bool {
        self.tenant_id == tenant_id && (self.is_admin() || self.user == owner)
    }
}

/// A header's value as text, if present and valid UTF-8.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks the headers: 401 if one is missing, 404 if the tenant does not exist.
pub(crate) fn check(shared: &Shared, headers: &HeaderMap) -> Result<Caller, Resp> {
    let Some(user) = header(headers, USER_HEADER) else {
        return Err(reply::text(
            401,
            "Coopr-UserID not found in request headers.",
        ));
    };
    let Some(tenant) = header(headers, TENANT_HEADER) else {
        return Err(reply::text(
            401,
            "Coopr-TenantID not found in request headers.",
        ));
    };
    let state = shared.read();
    match state.tenants.get(tenant) {
        Some(t) => Ok(Caller {
            user: user.to_string(),
            tenant_id: t.id.clone(),
        }),
        None => Err(reply::text(404, "Tenant does not exist.")),
    }
}

/// `security.realm` in `coopr-server/src/main/resources/coopr-default.xml`.
pub(crate) const REALM: &str = "coopr";

/// The `--security-token` check of `coopr-server/.../http/handler/auth/SecurityAuthenticationHttpHandler.java`:
/// the token is whatever follows the first space of `Authorization` (the scheme is not checked).
/// No header, or no space in it: `MISSING` (`WWW-Authenticate: Bearer realm="coopr"`, body
/// `{"auth_uri":[]}`); a token that is not ours: `INVALID`, with CDAP's `TokenState` message.
/// Either way 401, `application/json;charset=UTF-8`, and the connection is closed.
pub(crate) fn check_token(
    expected: &str,
    headers: &HeaderMap,
    version: http::Version,
) -> Result<(), Resp> {
    let token = header(headers, "authorization").and_then(|auth| {
        let sp = auth.trim().find(' ')?;
        auth.get(sp + 1..).map(str::trim)
    });
    let (challenge, body) = match token {
        Some(t) if t == expected => return Ok(()),
        None => (
            format!("Bearer realm=\"{REALM}\""),
            r#"{"auth_uri":[]}"#.to_string(),
        ),
        Some(_) => {
            let msg = "Invalid token signature.";
            (
                format!(
                    "Bearer realm=\"{REALM}\" error=\"invalid_token\" error_description=\"{msg}\""
                ),
                format!(r#"{{"error":"invalid_token","error_description":"{msg}","auth_uri":[]}}"#),
            )
        }
    };
    let mut resp = reply::text(401, body);
    let h = resp.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&challenge) {
        h.insert(http::header::WWW_AUTHENTICATE, v);
    }
    if version < http::Version::HTTP_2 {
        h.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    Err(resp)
}

/// 403 unless the caller is the tenant admin.
pub(crate) fn require_admin(caller: &Caller) -> Result<(), Resp> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(reply::text(403, "user unauthorized, must be admin."))
    }
}

/// 403 unless the caller is the superadmin.
pub(crate) fn require_superadmin(caller: &Caller) -> Result<(), Resp> {
    if caller.is_superadmin() {
        Ok(())
    } else {
        Err(reply::text(403, "user unauthorized, must be superadmin."))
    }
}
