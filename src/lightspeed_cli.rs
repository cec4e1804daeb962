//! `chargebridge lightspeed …`: register this service as a business location's PMS
//! provider at Lightspeed, inspect and remove the registration, and list the
//! location's revenue centers as a mapping template (the go-live steps).
//!
//! Results go to stdout (a table, or JSON with `--json`); notes and warnings to
//! stderr. Exit codes: 0 done, 1 Lightspeed refused, found nothing, or could not
//! be reached, 2 a usage or configuration error (nothing was sent). The access
//! token and every API key stay out of all output.

use crate::text_table::{one_line, table};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::config::{Settings, TenantSettings};
use crate::lightspeed::providers::{
    self, Client, Feature, MAX_FIELD_CHARS, NewProvider, PRODUCTION_BASE_URL, Provider,
    ProviderUpdate, RevenueCenter, TRIAL_BASE_URL,
};

/// Where the OAuth2 access token is read from unless `--token-env` names another.
pub const DEFAULT_TOKEN_ENV: &str = "LIGHTSPEED_ACCESS_TOKEN";
/// The provider name registered unless `--name` gives one.
pub const DEFAULT_PROVIDER_NAME: &str = "chargebridge";

#[derive(Args, Debug)]
pub struct LightspeedArgs {
    #[command(flatten)]
    pub options: ApiOptions,
    #[command(subcommand)]
    pub command: LightspeedCommand,
}

/// Options of every `lightspeed` command (accepted before or after it).
#[derive(Args, Debug)]
pub struct ApiOptions {
    /// TOML configuration: the tenants (API keys, mirroring) and server.public_url.
    #[arg(long, short, env = "CHARGEBRIDGE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Lightspeed's servers to call.
    #[arg(long, value_enum, default_value_t = LightspeedEnvironment::Trial, global = true)]
    pub environment: LightspeedEnvironment,
    /// Another base URL instead (https, or http on loopback for a stand-in).
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "environment",
        global = true
    )]
    pub base_url: Option<String>,
    /// The environment variable holding the OAuth2 access token (scope
    /// propertymanagement).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_TOKEN_ENV, global = true)]
    pub token_env: String,
    /// JSON on stdout, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    /// Bound of each request to Lightspeed.
    #[arg(long, value_name = "DURATION", default_value = "30s",
          value_parser = humantime::parse_duration, global = true)]
    pub timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LightspeedEnvironment {
    /// https://api.trial.lsk.lightspeed.app (trial and demo accounts)
    Trial,
    /// https://api.lsk.lightspeed.app
    Production,
}

impl LightspeedEnvironment {
    pub fn base_url(self) -> &'static str {
        match self {
            LightspeedEnvironment::Trial => TRIAL_BASE_URL,
            LightspeedEnvironment::Production => PRODUCTION_BASE_URL,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum LightspeedCommand {
    /// This service as a business location's PMS provider.
    #[command(subcommand)]
    Providers(ProvidersCommand),
    /// A business location's revenue centers, with a ready-to-paste mapping.
    RevenueCenters(RevenueCentersArgs),
}

#[derive(Subcommand, Debug)]
pub enum ProvidersCommand {
    /// The providers this OAuth client registered.
    List {
        /// Only this business location's.
        #[arg(long, value_name = "N")]
        business_location_id: Option<i64>,
    },
    /// Register a tenant's business location (one provider per location).
    Create(RegisterArgs),
    /// Replace a registration's endpoint, API key, name and features.
    Update(UpdateArgs),
    /// Remove a registration: Lightspeed stops sending charges to it.
    Delete(DeleteArgs),
}

#[derive(Args, Debug)]
pub struct RegisterArgs {
    /// The configured tenant (its `id`) whose api_key Lightspeed will send.
    #[arg(long, value_name = "ID")]
    pub tenant: String,
    /// Lightspeed's business location id.
    #[arg(long, value_name = "N")]
    pub business_location_id: i64,
    /// The provider's name in Lightspeed [default: chargebridge; update: kept].
    #[arg(long)]
    pub name: Option<String>,
    /// The URL Lightspeed calls [default: server.public_url of the configuration].
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Accept a plain http endpoint (never in production).
    #[arg(long)]
    pub allow_http: bool,
    /// An optional feature; repeat it or separate with commas. SEARCH_BY_NAME is
    /// always included. update: without any, the registered features are kept.
    #[arg(
        long = "feature",
        value_name = "FEATURE",
        value_enum,
        ignore_case = true,
        value_delimiter = ','
    )]
    pub features: Vec<FeatureArg>,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub register: RegisterArgs,
    /// The provider's id [default: the one registered at the business location].
    #[arg(long, value_name = "ID")]
    pub id: Option<i64>,
}

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("which").required(true).args(["id", "business_location_id"])))]
pub struct DeleteArgs {
    /// The provider's id.
    #[arg(long, value_name = "ID")]
    pub id: Option<i64>,
    /// The business location whose provider to delete.
    #[arg(long, value_name = "N")]
    pub business_location_id: Option<i64>,
    /// Required: the deletion takes effect at once and asks nothing.
    #[arg(long)]
    pub yes: bool,
}

#[derive(Args, Debug)]
pub struct RevenueCentersArgs {
    #[arg(long, value_name = "N")]
    pub business_location_id: i64,
    /// Fill the template with this configured tenant's current mapping.
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,
}

/// The features a provider can be registered with, as the API names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FeatureArg {
    #[value(name = "SEARCH_BY_NAME", alias = "search-by-name")]
    SearchByName,
    #[value(name = "MIRRORING")]
    Mirroring,
    #[value(name = "PARTIAL_PAYMENTS", alias = "partial-payments")]
    PartialPayments,
    #[value(name = "MULTI_PAYMENTS", alias = "multi-payments")]
    MultiPayments,
    #[value(name = "SERVICE_CHARGE", alias = "service-charge")]
    ServiceCharge,
    #[value(name = "ENRICHED_PAYLOAD", alias = "enriched-payload")]
    EnrichedPayload,
}

impl From<FeatureArg> for Feature {
    fn from(arg: FeatureArg) -> Feature {
        match arg {
            FeatureArg::SearchByName => Feature::SearchByName,
            FeatureArg::Mirroring => Feature::Mirroring,
            FeatureArg::PartialPayments => Feature::PartialPayments,
            FeatureArg::MultiPayments => Feature::MultiPayments,
            FeatureArg::ServiceCharge => Feature::ServiceCharge,
            FeatureArg::EnrichedPayload => Feature::EnrichedPayload,
        }
    }
}

/// Why a command stopped.
#[derive(Debug)]
enum Failure {
    /// Nothing was sent: arguments or configuration (exit 2).
    Usage(String),
    /// Lightspeed answered otherwise than hoped, or could not be reached (exit 1).
    Lightspeed(providers::Error),
    /// Lightspeed's state does not allow the step (exit 1).
    State(String),
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Usage(_) | Failure::Lightspeed(providers::Error::Config(_)) => 2,
            Failure::Lightspeed(_) | Failure::State(_) => 1,
        }
    }

    fn message(&self) -> String {
        match self {
            Failure::Usage(m) | Failure::State(m) => m.clone(),
            Failure::Lightspeed(e) => e.to_string(),
        }
    }
}

impl From<providers::Error> for Failure {
    fn from(e: providers::Error) -> Failure {
        Failure::Lightspeed(e)
    }
}

/// Texts never to print (the token, API keys): replaced wherever they appear.
#[derive(Default)]
struct Secrets(Vec<SecretString>);

impl Secrets {
    /// Shorter texts would match ordinary words; no real token or key is that short.
    const MIN_CHARS: usize = 4;

    fn add(&mut self, secret: &SecretString) {
        if secret.expose_secret().chars().count() >= Self::MIN_CHARS {
            self.0.push(secret.clone());
        }
    }

    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.0 {
            out = out.replace(secret.expose_secret(), "[redacted]");
        }
        out
    }
}

/// Where output goes: stdout for the result, stderr for notes.
struct Output {
    json: bool,
    secrets: Secrets,
}

impl Output {
    fn result(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(self.secrets.scrub(text).as_bytes());
        let _ = stdout.flush();
    }

    fn json(&self, value: &Value) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
        self.result(&format!("{text}\n"));
    }

    fn note(&self, text: &str) {
        let _ = writeln!(std::io::stderr(), "{}", self.secrets.scrub(text));
    }
}

/// Runs one `lightspeed` command to its exit code.
pub fn run(args: LightspeedArgs) -> ExitCode {
    let mut out = Output {
        json: args.options.json,
        secrets: Secrets::default(),
    };
    match execute(args, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            out.note(&format!("chargebridge: {}", failure.message()));
            ExitCode::from(failure.code())
        }
    }
}

fn execute(args: LightspeedArgs, out: &mut Output) -> Result<(), Failure> {
    if let LightspeedCommand::Providers(ProvidersCommand::Delete(delete)) = &args.command
        && !delete.yes
    {
        return Err(Failure::Usage(
            "providers delete removes the registration at once (Lightspeed stops sending \
             charges to it) and asks nothing: pass --yes"
                .into(),
        ));
    }
    let options = args.options;
    let base_url = chosen_base_url(&options)?;
    let settings = match options.config.as_deref() {
        Some(path) => Some(load_settings(path)?),
        None => None,
    };
    let token = access_token(&options.token_env)?;
    out.secrets.add(&token);
    if let Some(settings) = &settings {
        for tenant in &settings.tenants {
            if let Ok(key) = tenant.resolve_api_key() {
                out.secrets.add(&key);
            }
        }
    }
    let client = Client::new(&base_url, &token, options.timeout)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::State(format!("cannot start the async runtime: {e}")))?;
    let context = Context {
        client,
        settings,
        config_path: options.config,
    };
    runtime.block_on(async {
        match args.command {
            LightspeedCommand::Providers(ProvidersCommand::List {
                business_location_id,
            }) => list(&context, out, business_location_id).await,
            LightspeedCommand::Providers(ProvidersCommand::Create(register)) => {
                create(&context, out, register).await
            }
            LightspeedCommand::Providers(ProvidersCommand::Update(update_args)) => {
                update(&context, out, update_args).await
            }
            LightspeedCommand::Providers(ProvidersCommand::Delete(delete_args)) => {
                delete(&context, out, delete_args).await
            }
            LightspeedCommand::RevenueCenters(rc) => revenue_centers(&context, out, rc).await,
        }
    })
}

struct Context {
    client: Client,
    settings: Option<Settings>,
    config_path: Option<PathBuf>,
}

impl Context {
    fn settings(&self, command: &str) -> Result<&Settings, Failure> {
        self.settings.as_ref().ok_or_else(|| {
            Failure::Usage(format!(
                "{command} needs the configuration: pass --config FILE or set CHARGEBRIDGE_CONFIG"
            ))
        })
    }

    fn tenant(&self, command: &str, id: &str) -> Result<&TenantSettings, Failure> {
        let settings = self.settings(command)?;
        settings
            .tenants
            .iter()
            .find(|t| t.id.as_deref() == Some(id))
            .ok_or_else(|| {
                let known: Vec<&str> = settings
                    .tenants
                    .iter()
                    .filter_map(|t| t.id.as_deref())
                    .collect();
                let file = self
                    .config_path
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                Failure::Usage(format!(
                    "no tenant with id `{id}` in {file} (configured: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
            })
    }

    /// The configured tenant whose API key the provider carries, if any.
    fn tenant_of(&self, provider: &Provider) -> Option<String> {
        let key = provider.api_key.as_ref()?;
        self.settings.as_ref()?.tenants.iter().find_map(|t| {
            let own = t.resolve_api_key().ok()?;
            let same: bool = own
                .expose_secret()
                .as_bytes()
                .ct_eq(key.expose_secret().as_bytes())
                .into();
            if same { t.id.clone() } else { None }
        })
    }
}

fn load_settings(path: &Path) -> Result<Settings, Failure> {
    Settings::load(Some(path)).map_err(|e| Failure::Usage(e.to_string()))
}

fn chosen_base_url(options: &ApiOptions) -> Result<String, Failure> {
    let Some(raw) = options.base_url.as_deref() else {
        return Ok(options.environment.base_url().to_string());
    };
    let url = Url::parse(raw.trim())
        .map_err(|e| Failure::Usage(format!("--base-url `{}`: {e}", raw.trim())))?;
    let host = url.host_str().unwrap_or_default();
    let loopback = crate::cli::is_loopback_host(host);
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(Failure::Usage(format!(
                "--base-url `{url}` is plain http: the access token and API keys would travel \
                 unencrypted (http is accepted only on loopback)"
            )));
        }
        other => {
            return Err(Failure::Usage(format!(
                "--base-url must be an https URL, not {other}:"
            )));
        }
    }
    Ok(url.to_string())
}

fn access_token(var: &str) -> Result<SecretString, Failure> {
    let missing = |why: &str| {
        Failure::Usage(format!(
            "the environment variable {var} {why}: set it to an OAuth2 access token with the \
             scope `propertymanagement` (or name another variable with --token-env)"
        ))
    };
    match std::env::var(var) {
        Ok(value) if value.trim().is_empty() => Err(missing("is empty")),
        Ok(value) => Ok(SecretString::from(value.trim().to_string())),
        Err(std::env::VarError::NotPresent) => Err(missing("is not set")),
        Err(std::env::VarError::NotUnicode(_)) => Err(missing("is not valid text")),
    }
}

async fn list(
    context: &Context,
    out: &mut Output,
    business_location_id: Option<i64>,
) -> Result<(), Failure> {
    let providers = context.client.list_providers(business_location_id).await?;
    remember_keys(out, &providers);
    let with_tenants = context.settings.is_some();
    if out.json {
        let list: Vec<Value> = providers
            .iter()
            .map(|p| provider_json(p, context.tenant_of(p).as_deref()))
            .collect();
        out.json(&Value::Array(list));
        return Ok(());
    }
    if providers.is_empty() {
        let at = business_location_id
            .map(|n| format!(" at business location {n}"))
            .unwrap_or_default();
        out.result(&format!(
            "No PMS provider registered by this OAuth client{at}.\n"
        ));
        return Ok(());
    }
    let mut header = vec!["ID", "LOCATION", "NAME", "ENDPOINT", "FEATURES"];
    if with_tenants {
        header.push("TENANT");
    }
    let rows: Vec<Vec<String>> = providers
        .iter()
        .map(|p| {
            let mut row = vec![
                opt_num(p.id),
                opt_num(p.business_location_id),
                p.name.clone().unwrap_or_else(|| "-".into()),
                p.endpoint.clone().unwrap_or_else(|| "-".into()),
                feature_list(&p.features),
            ];
            if with_tenants {
                row.push(
                    context
                        .tenant_of(p)
                        .unwrap_or_else(|| "(no tenant has its api_key)".into()),
                );
            }
            row
        })
        .collect();
    out.result(&table(&header, &rows));
    Ok(())
}

/// The registration's fields from the configuration and the arguments, checked
/// before anything is sent.
struct Registration<'a> {
    tenant: &'a TenantSettings,
    tenant_id: String,
    api_key: SecretString,
    endpoint: String,
}

fn registration<'a>(
    context: &'a Context,
    out: &mut Output,
    command: &str,
    args: &RegisterArgs,
) -> Result<Registration<'a>, Failure> {
    let tenant = context.tenant(command, &args.tenant)?;
    let api_key = tenant
        .resolve_api_key()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    out.secrets.add(&api_key);
    let chars = api_key.expose_secret().chars().count();
    if chars > MAX_FIELD_CHARS {
        return Err(Failure::Usage(format!(
            "tenant `{}`: its api_key has {chars} characters; Lightspeed accepts at most {MAX_FIELD_CHARS}",
            args.tenant
        )));
    }
    let settings = context.settings(command)?;
    let endpoint = endpoint(
        args.endpoint.as_deref(),
        settings.server.public_url.as_deref(),
        args.allow_http,
        out,
    )?;
    if let Some(name) = &args.name {
        check_name(name)?;
    }
    Ok(Registration {
        tenant,
        tenant_id: args.tenant.clone(),
        api_key,
        endpoint,
    })
}

fn check_name(name: &str) -> Result<(), Failure> {
    let chars = name.trim().chars().count();
    if chars == 0 || chars > MAX_FIELD_CHARS {
        return Err(Failure::Usage(format!(
            "--name must have 1 to {MAX_FIELD_CHARS} characters"
        )));
    }
    Ok(())
}

/// The endpoint to register: `--endpoint`, else `server.public_url`.
fn endpoint(
    given: Option<&str>,
    public_url: Option<&str>,
    allow_http: bool,
    out: &Output,
) -> Result<String, Failure> {
    let (raw, source) = match (given, public_url) {
        (Some(raw), _) => (raw.trim(), "--endpoint"),
        (None, Some(raw)) => (raw.trim(), "server.public_url"),
        (None, None) => {
            return Err(Failure::Usage(
                "no endpoint to register: set server.public_url in the configuration \
                 (e.g. https://bridge.example.com/lightspeed) or pass --endpoint URL"
                    .into(),
            ));
        }
    };
    let url = Url::parse(raw).map_err(|e| Failure::Usage(format!("{source} `{raw}`: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => out.note(&format!(
            "warning: {source} `{raw}` is plain http: Lightspeed would send every charge and the \
             API key unencrypted (--allow-http is for tests, never for production)"
        )),
        "http" => {
            return Err(Failure::Usage(format!(
                "{source} `{raw}` is plain http: Lightspeed would send every charge and the API \
                 key unencrypted; use https (or --allow-http for a test setup)"
            )));
        }
        other => {
            return Err(Failure::Usage(format!(
                "{source} `{raw}` must be an https URL, not {other}:"
            )));
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Failure::Usage(format!(
            "{source} may not carry a user name or password"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Failure::Usage(format!(
            "{source} `{raw}` may not have a query or fragment: Lightspeed appends paths to it"
        )));
    }
    if raw.chars().count() > MAX_FIELD_CHARS {
        return Err(Failure::Usage(format!(
            "{source} is longer than the {MAX_FIELD_CHARS} characters Lightspeed accepts"
        )));
    }
    if !url.path().trim_end_matches('/').ends_with("/lightspeed") {
        out.note(&format!(
            "note: chargebridge answers Lightspeed under /lightspeed (/lightspeed/charge, \
             /lightspeed/search); make sure `{raw}` reaches it there"
        ));
    }
    Ok(raw.to_string())
}

/// The features to register and what to tell the operator about them.
struct FeaturePlan {
    features: Vec<Feature>,
    notes: Vec<String>,
}

/// `requested`: the `--feature` flags (`None`: none given); `registered`: the
/// provider's current features (update). SEARCH_BY_NAME is always in; MIRRORING
/// follows the tenant's `mirroring`, and a disagreement is warned about.
fn plan_features(
    requested: Option<Vec<Feature>>,
    registered: Option<&[Feature]>,
    tenant: &TenantSettings,
    tenant_id: &str,
) -> FeaturePlan {
    let mut features = vec![Feature::SearchByName];
    let base = requested
        .clone()
        .or_else(|| registered.map(<[Feature]>::to_vec))
        .unwrap_or_default();
    for feature in base {
        if !features.contains(&feature) {
            features.push(feature);
        }
    }
    let mut notes = Vec::new();
    let has_mirroring = features.contains(&Feature::Mirroring);
    if tenant.mirroring && !has_mirroring {
        features.push(Feature::Mirroring);
        notes.push(format!(
            "note: MIRRORING added: tenant `{tenant_id}` has mirroring = true"
        ));
    } else if has_mirroring && !tenant.mirroring {
        notes.push(format!(
            "warning: MIRRORING is {} but tenant `{tenant_id}` has mirroring = false: Lightspeed \
             will send every closed receipt and chargebridge will refuse those without a room \
             charge; set mirroring = true for the tenant or leave MIRRORING out",
            if requested.is_some() {
                "requested"
            } else {
                "registered"
            }
        ));
    }
    let on = |f: &Feature| features.contains(f);
    notes.push(
        "SEARCH_BY_NAME (always on): staff pick the guest from a list of names the PMS finds \
         instead of typing a room number"
            .into(),
    );
    for (feature, text) in [
        (
            Feature::MultiPayments,
            "several room payments on one receipt",
        ),
        (
            Feature::PartialPayments,
            "a room charge paying part of a receipt, the rest paid otherwise",
        ),
    ] {
        if on(&feature) {
            notes.push(format!("{feature}: chargebridge supports it ({text})"));
        } else {
            notes.push(format!(
                "{feature} is off; chargebridge supports it ({text}): add --feature {feature}"
            ));
        }
    }
    if on(&Feature::Mirroring) && tenant.mirroring {
        notes.push(
            "MIRRORING: every closed receipt arrives; those without a room charge are \
             acknowledged"
                .into(),
        );
    }
    let service_charge_before = registered.is_some_and(|r| r.contains(&Feature::ServiceCharge));
    if on(&Feature::ServiceCharge) {
        if registered.is_some() && !service_charge_before {
            notes.push(
                "SERVICE_CHARGE is being enabled: afterwards, in Back Office, toggle the PMS \
                 Server of the room-charge payment method (off and on again) so the POS \
                 sends service charges"
                    .into(),
            );
        } else {
            notes.push(
                "SERVICE_CHARGE: the service charge arrives apart from the lines (mapped with \
                 tenants.mapping.service_charge_code)"
                    .into(),
            );
        }
    } else if service_charge_before {
        notes.push(
            "SERVICE_CHARGE is being disabled: afterwards, in Back Office, toggle the PMS \
             Server of the room-charge payment method (off and on again) so the POS picks up \
             the change"
                .into(),
        );
    } else {
        notes.push(
            "SERVICE_CHARGE is off; enabling it later needs `providers update --feature \
             SERVICE_CHARGE …` plus toggling the PMS Server of the room-charge payment method \
             in Back Office"
                .into(),
        );
    }
    if on(&Feature::EnrichedPayload) {
        notes.push(
            "ENRICHED_PAYLOAD: Lightspeed adds detail to each charge; chargebridge reads the \
             fields it knows and ignores the rest"
                .into(),
        );
    }
    for feature in &features {
        if let Feature::Other(name) = feature {
            notes.push(format!(
                "{name}: unknown to this version of chargebridge; kept as registered"
            ));
        }
    }
    FeaturePlan { features, notes }
}

fn requested_features(args: &RegisterArgs) -> Option<Vec<Feature>> {
    if args.features.is_empty() {
        None
    } else {
        Some(args.features.iter().copied().map(Feature::from).collect())
    }
}

async fn create(context: &Context, out: &mut Output, args: RegisterArgs) -> Result<(), Failure> {
    let reg = registration(context, out, "providers create", &args)?;
    let name = args
        .name
        .as_deref()
        .map(str::trim)
        .unwrap_or(DEFAULT_PROVIDER_NAME)
        .to_string();
    let plan = plan_features(requested_features(&args), None, reg.tenant, &reg.tenant_id);
    let location = args.business_location_id;
    // One provider per location: say which one is there rather than let the
    // registration fail. (Only providers of this OAuth client are listed.)
    let existing = context.client.list_providers(Some(location)).await?;
    remember_keys(out, &existing);
    if let Some(p) = existing
        .iter()
        .find(|p| p.business_location_id.is_none_or(|l| l == location))
    {
        let owner = context
            .tenant_of(p)
            .map(|t| format!(", for tenant `{t}`"))
            .unwrap_or_default();
        return Err(Failure::State(format!(
            "business location {location} already has PMS provider {} \"{}\" ({}{owner}); a \
             location has one provider: change it with `providers update`",
            opt_num(p.id),
            p.name.as_deref().unwrap_or("-"),
            p.endpoint.as_deref().unwrap_or("-"),
        )));
    }
    let created = context
        .client
        .create_provider(&NewProvider {
            business_location_id: location,
            name,
            endpoint: reg.endpoint,
            api_key: reg.api_key,
            features: plan.features,
        })
        .await?;
    remember_keys(out, std::slice::from_ref(&created));
    for note in &plan.notes {
        out.note(note);
    }
    if out.json {
        out.json(&provider_json(&created, Some(&reg.tenant_id)));
    } else {
        out.result(&format!(
            "Registered PMS provider {} at business location {} for tenant `{}`.\n{}",
            opt_num(created.id),
            opt_num(created.business_location_id.or(Some(location))),
            reg.tenant_id,
            describe_provider(&created)
        ));
    }
    Ok(())
}

async fn update(context: &Context, out: &mut Output, args: UpdateArgs) -> Result<(), Failure> {
    let register = &args.register;
    let reg = registration(context, out, "providers update", register)?;
    let location = register.business_location_id;
    let current = find_provider(context, out, args.id, Some(location)).await?;
    let Some(id) = current.id.or(args.id) else {
        return Err(Failure::State(
            "Lightspeed listed the provider without an id".into(),
        ));
    };
    let plan = plan_features(
        requested_features(register),
        Some(&current.features),
        reg.tenant,
        &reg.tenant_id,
    );
    let name = register
        .name
        .as_deref()
        .map(str::trim)
        .map(str::to_string)
        .or_else(|| current.name.clone().filter(|n| !n.trim().is_empty()))
        .unwrap_or_else(|| DEFAULT_PROVIDER_NAME.to_string());
    let key_changed = current.api_key.as_ref().is_none_or(|old| {
        let same: bool = old
            .expose_secret()
            .as_bytes()
            .ct_eq(reg.api_key.expose_secret().as_bytes())
            .into();
        !same
    });
    let before = current.clone();
    let updated = context
        .client
        .update_provider(
            id,
            &ProviderUpdate {
                name,
                endpoint: reg.endpoint,
                api_key: reg.api_key,
                features: plan.features,
            },
        )
        .await?;
    remember_keys(out, std::slice::from_ref(&updated));
    for note in &plan.notes {
        out.note(note);
    }
    if out.json {
        out.json(&provider_json(&updated, Some(&reg.tenant_id)));
        return Ok(());
    }
    let mut text = format!(
        "Updated PMS provider {id} at business location {location} for tenant `{}`.\n",
        reg.tenant_id
    );
    let was = |old: String, new: String| {
        if old == new {
            new
        } else {
            format!("{new} (was {old})")
        }
    };
    let _ = writeln!(
        text,
        "  name: {}\n  endpoint: {}\n  features: {}\n  apiKey: {}",
        was(
            one_line(before.name.as_deref().unwrap_or("-")),
            one_line(updated.name.as_deref().unwrap_or("-"))
        ),
        was(
            one_line(before.endpoint.as_deref().unwrap_or("-")),
            one_line(updated.endpoint.as_deref().unwrap_or("-"))
        ),
        was(
            feature_list(&before.features),
            feature_list(&updated.features)
        ),
        if key_changed {
            format!("replaced by tenant `{}`'s", reg.tenant_id)
        } else {
            "unchanged".into()
        }
    );
    out.result(&text);
    Ok(())
}

async fn delete(context: &Context, out: &mut Output, args: DeleteArgs) -> Result<(), Failure> {
    let provider = find_provider(context, out, args.id, args.business_location_id).await?;
    let Some(id) = provider.id.or(args.id) else {
        return Err(Failure::State(
            "Lightspeed listed the provider without an id".into(),
        ));
    };
    let answered = context.client.delete_provider(id).await?;
    let deleted = answered.unwrap_or(id);
    if out.json {
        out.json(&json!({
            "deleted": deleted,
            "businessLocationId": provider.business_location_id,
            "name": provider.name,
        }));
    } else {
        out.result(&format!(
            "Deleted PMS provider {deleted} \"{}\" at business location {}.\n",
            provider.name.as_deref().unwrap_or("-"),
            opt_num(provider.business_location_id)
        ));
    }
    Ok(())
}

/// The provider by id (checked against the location when both are given), or the
/// one registered at the location.
async fn find_provider(
    context: &Context,
    out: &mut Output,
    id: Option<i64>,
    location: Option<i64>,
) -> Result<Provider, Failure> {
    if let Some(id) = id {
        let provider = context.client.get_provider(id).await?;
        remember_keys(out, std::slice::from_ref(&provider));
        if let (Some(want), Some(at)) = (location, provider.business_location_id)
            && want != at
        {
            return Err(Failure::State(format!(
                "PMS provider {id} belongs to business location {at}, not {want}"
            )));
        }
        return Ok(provider);
    }
    let Some(location) = location else {
        return Err(Failure::Usage(
            "name the provider with --id or --business-location-id".into(),
        ));
    };
    let mut found: Vec<Provider> = context
        .client
        .list_providers(Some(location))
        .await?
        .into_iter()
        .filter(|p| p.business_location_id.is_none_or(|l| l == location))
        .collect();
    remember_keys(out, &found);
    match found.len() {
        0 => Err(Failure::State(format!(
            "no PMS provider of this OAuth client at business location {location} (register \
             one with `providers create`)"
        ))),
        1 => found
            .pop()
            .ok_or_else(|| Failure::State("the provider vanished".into())),
        n => Err(Failure::State(format!(
            "{n} PMS providers at business location {location}: name one with --id ({})",
            found
                .iter()
                .map(|p| opt_num(p.id))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

async fn revenue_centers(
    context: &Context,
    out: &mut Output,
    args: RevenueCentersArgs,
) -> Result<(), Failure> {
    let tenant = match args.tenant.as_deref() {
        Some(id) => Some(context.tenant("revenue-centers --tenant", id)?),
        None => None,
    };
    let location = args.business_location_id;
    let centers = context.client.revenue_centers(location).await?;
    if out.json {
        let list: Vec<Value> = centers
            .iter()
            .map(|c| json!({"id": c.id, "name": c.name}))
            .collect();
        out.json(&Value::Array(list));
        return Ok(());
    }
    let mapping = tenant.map(|t| &t.mapping.revenue_centers);
    let mut text = String::new();
    if centers.is_empty() {
        let _ = writeln!(text, "Business location {location} has no revenue centers.");
    } else {
        let rows: Vec<Vec<String>> = centers
            .iter()
            .map(|c| {
                vec![
                    c.id.clone().unwrap_or_else(|| "-".into()),
                    c.name.clone().unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        text.push_str(&table(&["ID", "NAME"], &rows));
    }
    text.push('\n');
    text.push_str(&mapping_template(location, &centers, mapping));
    out.result(&text);
    if let Some(mapping) = mapping {
        for key in mapping.keys() {
            if !centers
                .iter()
                .any(|c| c.id.as_deref() == Some(key.as_str()))
            {
                out.note(&format!(
                    "warning: the tenant maps revenue center \"{key}\", which business location \
                     {location} does not list"
                ));
            }
        }
    }
    Ok(())
}

/// `[tenants.mapping.revenue_centers]` with one `"<id>" = ""  # <name>` line per
/// center (the current value when the tenant maps it already).
fn mapping_template(
    location: i64,
    centers: &[RevenueCenter],
    mapping: Option<&std::collections::BTreeMap<String, String>>,
) -> String {
    let mut text = format!(
        "# Revenue centers of business location {location}: paste under the tenant's \
         [[tenants]] entry and fill in the PMS outlet of each.\n\
         [tenants.mapping.revenue_centers]\n"
    );
    for center in centers {
        let Some(id) = center.id.as_deref() else {
            continue;
        };
        let value = mapping
            .and_then(|m| m.get(id))
            .map(String::as_str)
            .unwrap_or("");
        let name = one_line(center.name.as_deref().unwrap_or(""));
        let _ = writeln!(
            text,
            "{} = {}  # {name}",
            toml_string(id),
            toml_string(value)
        );
    }
    text
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn remember_keys(out: &mut Output, providers: &[Provider]) {
    for provider in providers {
        if let Some(key) = &provider.api_key {
            out.secrets.add(key);
        }
    }
}

/// A provider for `--json`: every field but the API key.
fn provider_json(provider: &Provider, tenant: Option<&str>) -> Value {
    json!({
        "id": provider.id,
        "businessLocationId": provider.business_location_id,
        "name": provider.name,
        "endpoint": provider.endpoint,
        "features": provider.features,
        "tenant": tenant,
    })
}

fn describe_provider(provider: &Provider) -> String {
    format!(
        "  name: {}\n  endpoint: {}\n  features: {}\n",
        one_line(provider.name.as_deref().unwrap_or("-")),
        one_line(provider.endpoint.as_deref().unwrap_or("-")),
        feature_list(&provider.features)
    )
}

fn feature_list(features: &[Feature]) -> String {
    if features.is_empty() {
        return "-".into();
    }
    features
        .iter()
        .map(Feature::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

fn opt_num(n: Option<i64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
}

/// No control characters (a name cannot move the cursor or end a TOML comment).
#[cfg(test)]
mod tests {
    use super::*;

    const SUBSET: &str = include_str!("../tests/vendor/lightspeed/pms-api.subset.openapi.json");

    #[test]
    fn environments_use_the_servers_of_the_vendor_description() {
        let doc: Value = serde_json::from_str(SUBSET).unwrap();
        let urls: Vec<&str> = doc["servers"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["url"].as_str())
            .collect();
        assert_eq!(
            urls,
            [
                LightspeedEnvironment::Trial.base_url(),
                LightspeedEnvironment::Production.base_url()
            ]
        );
    }

    #[test]
    fn every_feature_flag_is_in_the_description() {
        let doc: Value = serde_json::from_str(SUBSET).unwrap();
        let listed: Vec<&str> = doc["components"]["schemas"]["pms-apiProviderFeature"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let ours: Vec<String> = FeatureArg::value_variants()
            .iter()
            .map(|f| Feature::from(*f).to_string())
            .collect();
        assert_eq!(listed, ours);
        assert_eq!(
            Feature::KNOWN
                .iter()
                .map(Feature::as_str)
                .collect::<Vec<_>>(),
            listed
        );
    }

    #[test]
    fn the_template_is_valid_toml_with_escaped_names() {
        let centers = vec![
            RevenueCenter {
                id: Some("343243933".into()),
                name: Some("Bar \"Nord\"\nnext".into()),
            },
            RevenueCenter {
                id: None,
                name: Some("no id".into()),
            },
        ];
        let mut mapping = std::collections::BTreeMap::new();
        mapping.insert("343243933".to_string(), "OUT-1".to_string());
        let text = mapping_template(7, &centers, Some(&mapping));
        assert!(
            text.contains("\"343243933\" = \"OUT-1\"  # Bar \"Nord\" next\n"),
            "{text}"
        );
        assert!(!text.contains("no id"));
        assert_eq!(toml_string("a\"b\\c\u{7}"), "\"a\\\"b\\\\c\\u0007\"");
    }

    #[test]
    fn secrets_are_scrubbed() {
        let mut s = Secrets::default();
        s.add(&SecretString::from("tok-123"));
        s.add(&SecretString::from(""));
        assert_eq!(s.scrub("a tok-123 b"), "a [redacted] b");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["ID", "NAME"],
            &[
                vec!["1".into(), "Bar".into()],
                vec!["22".into(), "X\ty".into()],
            ],
        );
        assert_eq!(t, "ID  NAME\n1   Bar\n22  X y\n");
    }
}
