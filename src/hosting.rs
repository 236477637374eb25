//! Which Azure Functions plan this process runs on, decided from the variables the host
//! itself reads (azure-functions-host `EnvironmentExtensions`), and whether `$HOME` is a
//! file share every instance of the app sees: that decides where scale-out state can live.

/// The hosting plan, as the Functions host tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostingPlan {
    /// `WEBSITE_INSTANCE_ID` set (host: `IsAppService`): Windows Consumption, Premium,
    /// Dedicated, and Linux Premium/Dedicated.
    AppService {
        /// `$HOME` is the app's persistent storage: always on Windows (`IsWindowsAzureManagedHosting`);
        /// on Linux unless `WEBSITES_ENABLE_APP_SERVICE_STORAGE` is `false`
        /// (`IsLinuxAppServiceWithPersistentFileSystem`).
        persistent_home: bool,
    },
    /// `WEBSITE_SKU=FlexConsumption`, or (placeholder mode, before site settings arrive)
    /// `CONTAINER_NAME`/`WEBSITE_POD_NAME` with `LEGION_SERVICE_HOST` (`IsFlexConsumptionSku`).
    /// Each instance has its own disk; there is no content share.
    FlexConsumption,
    /// `CONTAINER_NAME` without `WEBSITE_INSTANCE_ID` or `LEGION_SERVICE_HOST`
    /// (`IsLinuxConsumptionOnAtlas`).
    LinuxConsumption {
        /// `WEBSITE_CONTENTAZUREFILECONNECTIONSTRING` and `WEBSITE_CONTENTSHARE` are set
        /// (`AzureFilesAppSettingsExist`): `$HOME` is mounted from that Azure Files share.
        content_share: bool,
    },
    /// None of the above: `func start` on a developer machine, a container, a test.
    Local,
}

impl HostingPlan {
    /// The plan from environment lookups (empty values count as unset, as the host's
    /// `string.IsNullOrEmpty` does).
    pub fn detect(get: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| get(name).is_some_and(|v| !v.trim().is_empty());
        let is = |name: &str, value: &str| get(name).is_some_and(|v| v.trim().eq_ignore_ascii_case(value));
        if set("WEBSITE_INSTANCE_ID") {
            let persistent_home = cfg!(windows) || !is("WEBSITES_ENABLE_APP_SERVICE_STORAGE", "false");
            return Self::AppService { persistent_home };
        }
        let on_legion = (set("CONTAINER_NAME") || set("WEBSITE_POD_NAME")) && set("LEGION_SERVICE_HOST");
        if is("WEBSITE_SKU", "FlexConsumption") || on_legion {
            return Self::FlexConsumption;
        }
        if set("CONTAINER_NAME") {
            let content_share = set("WEBSITE_CONTENTAZUREFILECONNECTIONSTRING") && set("WEBSITE_CONTENTSHARE");
            return Self::LinuxConsumption { content_share };
        }
        Self::Local
    }

    /// True when every instance of the app sees the same `$HOME`, so a file written there
    /// by one instance is read by a new one.
    pub fn shared_home(self) -> bool {
        match self {
            Self::AppService { persistent_home } => persistent_home,
            Self::LinuxConsumption { content_share } => content_share,
            Self::FlexConsumption | Self::Local => false,
        }
    }

    /// A short name for the start-up line.
    pub fn name(self) -> &'static str {
        match self {
            Self::AppService { .. } => "app-service",
            Self::FlexConsumption => "flex-consumption",
            Self::LinuxConsumption { .. } => "linux-consumption",
            Self::Local => "local",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(vars: &[(&str, &str)]) -> HostingPlan {
        HostingPlan::detect(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn app_service_shares_home_unless_linux_storage_is_turned_off() {
        assert_eq!(plan(&[("WEBSITE_INSTANCE_ID", "abc")]), HostingPlan::AppService { persistent_home: true });
        assert!(plan(&[("WEBSITE_INSTANCE_ID", "abc"), ("WEBSITE_SKU", "ElasticPremium")]).shared_home());
        let off = plan(&[("WEBSITE_INSTANCE_ID", "abc"), ("WEBSITES_ENABLE_APP_SERVICE_STORAGE", "false")]);
        assert_eq!(off.shared_home(), cfg!(windows));
    }

    #[test]
    fn flex_consumption_is_told_by_its_sku_or_legion_and_has_no_shared_home() {
        assert_eq!(plan(&[("WEBSITE_SKU", "FlexConsumption"), ("CONTAINER_NAME", "c")]), HostingPlan::FlexConsumption);
        assert_eq!(plan(&[("WEBSITE_POD_NAME", "p"), ("LEGION_SERVICE_HOST", "h")]), HostingPlan::FlexConsumption);
        assert!(!HostingPlan::FlexConsumption.shared_home());
    }

    #[test]
    fn linux_consumption_shares_home_only_with_a_content_share() {
        assert_eq!(plan(&[("CONTAINER_NAME", "c")]), HostingPlan::LinuxConsumption { content_share: false });
        let shared = plan(&[
            ("CONTAINER_NAME", "c"),
            ("WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "DefaultEndpointsProtocol=https;..."),
            ("WEBSITE_CONTENTSHARE", "app-share"),
        ]);
        assert_eq!(shared, HostingPlan::LinuxConsumption { content_share: true });
        assert!(shared.shared_home());
    }

    #[test]
    fn nothing_set_is_local_and_empty_values_count_as_unset() {
        assert_eq!(plan(&[]), HostingPlan::Local);
        assert_eq!(plan(&[("WEBSITE_INSTANCE_ID", " "), ("CONTAINER_NAME", "")]), HostingPlan::Local);
        assert!(!HostingPlan::Local.shared_home());
    }
}
