//! Where a Genesys Cloud organization lives: its region domain decides both the API and the login
//! host, so a single setting (`GENESYS_REGION`) configures both and they cannot disagree.

/// The region domains Genesys Cloud runs in: the hosts of `PureCloudRegionHosts` in Genesys' own
/// SDKs. Only these are accepted, so a typo fails at init with a message listing them instead of
/// as connection errors on the first event; a region added later can be reached through the base
/// URL overrides until it is listed here.
pub const REGIONS: &[&str] = &[
    "mypurecloud.com",
    "mypurecloud.ie",
    "mypurecloud.de",
    "mypurecloud.com.au",
    "mypurecloud.jp",
    "usw2.pure.cloud",
    "cac1.pure.cloud",
    "euw2.pure.cloud",
    "euc2.pure.cloud",
    "aps1.pure.cloud",
    "apne2.pure.cloud",
    "apne3.pure.cloud",
    "apse1.pure.cloud",
    "sae1.pure.cloud",
    "mec1.pure.cloud",
    "mxc1.pure.cloud",
    "use2.us-gov-pure.cloud",
    "edee1.eusc-pure.cloud",
];

/// The API and login base URLs of one organization, without a trailing slash. Kept as data so
/// tests and the local stack can point the client at a local server (`GENESYS_API_BASE`,
/// `GENESYS_LOGIN_BASE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesysEndpoints {
    /// Base of the Platform API, e.g. `https://api.mypurecloud.com`.
    pub api_base: String,
    /// Base of the OAuth login service, e.g. `https://login.mypurecloud.com`.
    pub login_base: String,
}

impl GenesysEndpoints {
    /// The endpoints of a region domain such as `mypurecloud.com` or `usw2.pure.cloud`. Case and
    /// surrounding blanks are forgiven; anything else that is not a known region is refused with
    /// the reason (phrased to follow the setting's name, e.g. "must be ..."), which lists the
    /// accepted values.
    pub fn for_region(region: &str) -> Result<Self, String> {
        let domain = region.trim().to_ascii_lowercase();
        if !REGIONS.contains(&domain.as_str()) {
            let hint = if domain.contains("://")
                || domain.starts_with("api.")
                || domain.starts_with("login.")
            {
                "; give the region domain alone, without a scheme or an api./login. prefix"
            } else {
                ""
            };
            return Err(format!(
                "must be a Genesys Cloud region domain, one of {} (got {region:?}){hint}",
                REGIONS.join(", ")
            ));
        }
        Ok(Self {
            api_base: format!("https://api.{domain}"),
            login_base: format!("https://login.{domain}"),
        })
    }

    /// Replaces either base URL when an override is given (blank overrides are ignored), so a
    /// test or the local stack can aim the client at a local server while production uses the
    /// region's hosts.
    pub fn with_overrides(mut self, api: Option<String>, login: Option<String>) -> Self {
        if let Some(api) = normalized(api) {
            self.api_base = api;
        }
        if let Some(login) = normalized(login) {
            self.login_base = login;
        }
        self
    }

    /// Endpoints where the API and login services share one base URL (a local fake server).
    pub fn local(base_url: &str) -> Self {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        Self {
            api_base: base.clone(),
            login_base: base,
        }
    }
}

fn normalized(url: Option<String>) -> Option<String> {
    url.map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_region_builds_api_and_login_hosts() {
        for region in REGIONS {
            let endpoints = GenesysEndpoints::for_region(region).unwrap();
            assert_eq!(endpoints.api_base, format!("https://api.{region}"));
            assert_eq!(endpoints.login_base, format!("https://login.{region}"));
        }
        let endpoints = GenesysEndpoints::for_region("usw2.pure.cloud").unwrap();
        assert_eq!(endpoints.api_base, "https://api.usw2.pure.cloud");
        assert_eq!(endpoints.login_base, "https://login.usw2.pure.cloud");
    }

    #[test]
    fn the_list_is_the_official_sdks_region_hosts() {
        // The SDKs' `PureCloudRegionHosts` holds 18 hosts; the newest is the EU sovereign cloud.
        assert_eq!(REGIONS.len(), 18, "{REGIONS:?}");
        let unique: std::collections::BTreeSet<_> = REGIONS.iter().collect();
        assert_eq!(unique.len(), REGIONS.len(), "a host is listed twice");
        let sovereign = GenesysEndpoints::for_region("edee1.eusc-pure.cloud").unwrap();
        assert_eq!(sovereign.api_base, "https://api.edee1.eusc-pure.cloud");
        assert_eq!(sovereign.login_base, "https://login.edee1.eusc-pure.cloud");
    }

    #[test]
    fn case_and_blanks_are_forgiven() {
        let endpoints = GenesysEndpoints::for_region("  MyPureCloud.IE \n").unwrap();
        assert_eq!(endpoints.api_base, "https://api.mypurecloud.ie");
    }

    #[test]
    fn unknown_or_malformed_regions_are_refused_with_a_reason() {
        for bad in [
            "",
            "   ",
            "mypurecloud.co",
            "example.com",
            "pure.cloud",
            "xyz.pure.cloud",
            "https://api.mypurecloud.com",
            "api.mypurecloud.com",
            "mypurecloud.com/evil",
            "mypurecloud.com:8443",
            "mypurecloud.com.",
            "us-east-1",
        ] {
            let reason = GenesysEndpoints::for_region(bad).unwrap_err();
            assert!(reason.contains("mypurecloud.com"), "{bad:?}: {reason}");
        }
        let reason = GenesysEndpoints::for_region("https://api.mypurecloud.com").unwrap_err();
        assert!(reason.contains("without a scheme"), "{reason}");
    }

    #[test]
    fn overrides_replace_either_base_and_lose_trailing_slashes() {
        let base = GenesysEndpoints::for_region("mypurecloud.de").unwrap();
        let both = base.clone().with_overrides(
            Some("http://127.0.0.1:9000/".into()),
            Some(" http://127.0.0.1:9001 ".into()),
        );
        assert_eq!(both.api_base, "http://127.0.0.1:9000");
        assert_eq!(both.login_base, "http://127.0.0.1:9001");

        let api_only = base
            .clone()
            .with_overrides(Some("http://127.0.0.1:9000".into()), None);
        assert_eq!(api_only.api_base, "http://127.0.0.1:9000");
        assert_eq!(api_only.login_base, "https://login.mypurecloud.de");

        let blank = base
            .clone()
            .with_overrides(Some("  ".into()), Some(String::new()));
        assert_eq!(blank, base);
    }

    #[test]
    fn a_local_server_serves_both_bases() {
        let local = GenesysEndpoints::local("http://127.0.0.1:4000/");
        assert_eq!(local.api_base, "http://127.0.0.1:4000");
        assert_eq!(local.login_base, "http://127.0.0.1:4000");
    }
}
