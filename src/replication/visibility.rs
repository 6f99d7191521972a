//! Coopr's visibility rules (docs/coopr-api.md §1), applied to what the replica store answers:
//! a missing `Coopr-UserID` or `Coopr-TenantID` is 401; a cluster of another tenant, or of
//! another user when the caller is not the tenant admin (user `admin`), is 404. Tenants are
//! compared by *name* (the header), which is the same in every DC, unlike tenant UUIDs.

/// The caller, from the request headers.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub user: Option<&'a str>,
    pub tenant: Option<&'a str>,
}

impl<'a> Caller<'a> {
    pub fn from_headers(h: &'a http::HeaderMap) -> Self {
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
        Caller {
            user: get("coopr-userid"),
            tenant: get("coopr-tenantid"),
        }
    }
}

/// What the caller may see of one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// 401 "Coopr-UserID not found in request headers."
    MissingUser,
    /// 401 "Coopr-TenantID not found in request headers."
    MissingTenant,
    /// 404, as if the cluster did not exist.
    Hidden,
    Visible,
}

/// The rule: same tenant, and the tenant admin or the cluster's owner.
pub fn visibility(caller: Caller<'_>, tenant: &str, owner: &str) -> Visibility {
    let Some(user) = caller.user else {
        return Visibility::MissingUser;
    };
    let Some(t) = caller.tenant else {
        return Visibility::MissingTenant;
    };
    if t == tenant && (user == "admin" || user == owner) {
        Visibility::Visible
    } else {
        Visibility::Hidden
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coopr_rules() {
        let c = |user, tenant| Caller { user, tenant };
        let table = [
            (c(None, Some("acme")), Visibility::MissingUser),
            (c(None, None), Visibility::MissingUser),
            (c(Some("bob"), None), Visibility::MissingTenant),
            (c(Some("bob"), Some("acme")), Visibility::Visible),
            (c(Some("admin"), Some("acme")), Visibility::Visible),
            (c(Some("eve"), Some("acme")), Visibility::Hidden),
            (c(Some("bob"), Some("other")), Visibility::Hidden),
            (c(Some("admin"), Some("other")), Visibility::Hidden),
            (c(Some("admin"), Some("superadmin")), Visibility::Hidden),
        ];
        for (caller, want) in table {
            assert_eq!(visibility(caller, "acme", "bob"), want, "{caller:?}");
        }
    }
}
