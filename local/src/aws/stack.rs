//! One local stack: moto + the front door + deployed state machines, on free loopback ports.
//!
//! Like the template, it deploys per region: every state machine in each of [`REGIONS`], each
//! region's functions with that region's configuration. One moto plays all of them (it keeps a
//! backend per region, chosen by each request's signature).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_config::SdkConfig;
use hapilot_functions::config::Settings;
use hapilot_functions::registry::{Adapters, FunctionRegistry, Handler};
use tokio::net::TcpListener;

use crate::LocalError;
use crate::aws::definitions::{definitions_in, deploy, local_substitutions};
use crate::aws::front_door::FrontDoor;
use crate::aws::moto::{MotoInstall, MotoServer};
use crate::{DEFAULT_REGION, free_port, project_root};

/// The regions the local stack deploys: the HA document's primary, standby, and DR/witness.
pub const REGIONS: [&str; 3] = ["us-east-1", "us-west-2", "eu-west-1"];

/// How to start a local stack. [`StackOptions::default`] gives the repository's own setup.
#[derive(Clone)]
pub struct StackOptions {
    /// Port of the front door (the endpoint users talk to); `None` picks a free one.
    pub port: Option<u16>,
    /// The region clients and the CLI use by default (one of [`REGIONS`]).
    pub region: String,
    /// The project-local venv that holds moto.
    pub venv: PathBuf,
    /// The Python that creates the venv.
    pub python: String,
    /// State machine definitions to deploy.
    pub definitions: Vec<PathBuf>,
    /// Where moto's log goes.
    pub log_dir: PathBuf,
    /// How long moto may take to answer after starting.
    pub moto_start_timeout: Duration,
    /// The deployment configuration the functions see (in AWS: their environment).
    pub settings: Settings,
    /// Extra functions for the front door to serve (tests use misbehaving ones).
    pub extra_functions: Vec<(String, Handler)>,
}

impl Default for StackOptions {
    fn default() -> Self {
        let root = project_root();
        Self {
            port: None,
            region: DEFAULT_REGION.to_string(),
            venv: std::env::var_os("HAPILOT_VENV")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join(".venv")),
            python: std::env::var("HAPILOT_PYTHON").unwrap_or_else(|_| "python3".to_string()),
            definitions: definitions_in(&root.join("statemachines")),
            log_dir: root.join(".hapilot").join("logs"),
            moto_start_timeout: Duration::from_secs(60),
            // Everything local listens on loopback over plain HTTP.
            settings: Settings {
                allow_plain_http: true,
                ..Settings::with_defaults()
            },
            extra_functions: Vec::new(),
        }
    }
}

impl StackOptions {
    /// These options without the product's own state machines: for a stack that a deployment
    /// will take over ([`LocalStack::adopt`]), whose templates bring those machines. moto parses
    /// every definition it is given (about 3.4 s of its CPU for the three regions' copies), so a
    /// world that deploys templates skips the copies it would delete at once. Other definitions
    /// (a test harness's) stay.
    pub fn leaving_machines_to_templates(mut self) -> Self {
        let product: Vec<String> = definitions_in(&project_root().join("statemachines"))
            .iter()
            .map(|file| crate::aws::definitions::machine_name(file))
            .collect();
        self.definitions
            .retain(|file| !product.contains(&crate::aws::definitions::machine_name(file)));
        self
    }
}

/// A running local stack. Dropping it stops moto and the front door.
pub struct LocalStack {
    front_door: FrontDoor,
    extra_functions: Vec<(String, Handler)>,
    venv: PathBuf,
    /// Region -> (deployed function name -> the handler it runs), from deployed templates.
    aliases: std::sync::Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    /// Region -> (short name -> ARN) of state machines a deployed template replaced.
    adopted: std::sync::Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    moto: MotoServer,
    moto_port: u16,
    region: String,
    sdk_config: SdkConfig,
    state_machines: std::sync::Mutex<BTreeMap<String, String>>,
}

impl LocalStack {
    /// Installs moto if needed, starts moto and the front door, deploys the definitions.
    /// `progress` hears a line for each slow step.
    pub async fn start(
        options: StackOptions,
        progress: impl Fn(&str) + Send + 'static,
    ) -> Result<Self, LocalError> {
        // The port first: a taken port is reported at once, not after a minute of installing.
        let listener = match options.port {
            Some(port) => TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    LocalError::PortInUse { port }
                } else {
                    LocalError::Io {
                        context: format!("binding 127.0.0.1:{port}"),
                        source: e,
                    }
                }
            })?,
            None => TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(LocalError::io("binding a free port"))?,
        };
        let install = MotoInstall::at(&options.venv);
        let python = options.python.clone();
        let install_for_task = install.clone();
        tokio::task::spawn_blocking(move || install_for_task.ensure(&python, progress))
            .await
            .map_err(|e| LocalError::io("installing moto")(std::io::Error::other(e)))??;

        let front_door_port = listener
            .local_addr()
            .map_err(LocalError::io("reading the bound port"))?
            .port();
        let moto_port = free_port().map_err(LocalError::io("finding a free port for moto"))?;
        let moto = MotoServer::start(
            &install,
            moto_port,
            front_door_port,
            &options.log_dir,
            options.moto_start_timeout,
        )
        .await?;

        let endpoint = format!("http://127.0.0.1:{front_door_port}");
        let sdk_config = hapilot_adapters::sdk::local(&endpoint, &options.region);
        let mut registries = BTreeMap::new();
        for region in regions_with(&options.region) {
            let config = hapilot_adapters::sdk::local(&endpoint, &region);
            registries.insert(
                region.clone(),
                build_registry(&config, options.settings.clone(), &options.extra_functions)?,
            );
        }
        let front_door = FrontDoor::start(
            listener,
            registries,
            std::net::SocketAddr::from(([127, 0, 0, 1], moto_port)),
            &options.region,
        );
        let mut state_machines = BTreeMap::new();
        for region in regions_with(&options.region) {
            let sfn = aws_sdk_sfn::Client::new(&hapilot_adapters::sdk::local(&endpoint, &region));
            let deployed =
                deploy(&sfn, &options.definitions, &local_substitutions(&region)).await?;
            if region == options.region {
                state_machines = deployed;
            }
        }
        Ok(Self {
            front_door,
            extra_functions: options.extra_functions,
            venv: options.venv,
            aliases: Default::default(),
            adopted: Default::default(),
            moto,
            moto_port,
            region: options.region,
            sdk_config,
            state_machines: std::sync::Mutex::new(state_machines),
        })
    }

    /// Gives every region's functions a new deployment configuration (in AWS: new environment
    /// variables), from the next invoke on.
    pub fn configure(&self, settings: Settings) -> Result<(), LocalError> {
        for region in self.regions() {
            self.configure_region(&region, settings.clone())?;
        }
        Ok(())
    }

    /// Gives `region`'s functions a new configuration.
    pub fn configure_region(&self, region: &str, settings: Settings) -> Result<(), LocalError> {
        let mut registry =
            build_registry(&self.sdk_config_in(region), settings, &self.extra_functions)?;
        let aliases = self
            .aliases
            .lock()
            .expect("aliases")
            .get(region)
            .cloned()
            .unwrap_or_default();
        for (name, binary) in aliases {
            if let Some(handler) = registry.get(&binary) {
                registry.insert(&name, move |event| handler(event));
            }
        }
        self.front_door.replace_registry(region, registry);
        Ok(())
    }

    /// The Python of the stack's venv (moto's, with AWS's SAM translator).
    pub fn python(&self) -> PathBuf {
        crate::aws::moto::MotoInstall::at(&self.venv).python_path()
    }

    /// Takes over what a template deployed in `region`: its functions are served under their
    /// deployed names (each runs the handler its template names), and its state machines
    /// replace the stack's own copies of the same definitions, which are deleted so that a
    /// name resolves to the template's machine only. Call [`LocalStack::configure_region`]
    /// afterwards.
    pub async fn adopt(
        &self,
        deployed: &crate::aws::template::stack::DeployedStack,
    ) -> Result<(), LocalError> {
        let region = deployed.region.clone();
        self.aliases.lock().expect("aliases").insert(
            region.clone(),
            deployed
                .functions
                .values()
                .map(|f| (f.name.clone(), f.binary.clone()))
                .collect(),
        );
        let prefix = format!("{}-", deployed.name);
        let mut adopted = BTreeMap::new();
        for (name, arn) in &deployed.state_machines {
            let short = name.strip_prefix(&prefix).unwrap_or(name).to_string();
            adopted.insert(short, arn.clone());
        }
        let sfn = aws_sdk_sfn::Client::new(&self.observer_config(&region));
        for short in adopted.keys() {
            let own = crate::aws::definitions::local_state_machine_arn(&region, short);
            // Only the stack's own copy; a template whose machine has no stack prefix keeps it.
            if !deployed.state_machines.values().any(|a| *a == own) {
                let _ = sfn
                    .delete_state_machine()
                    .state_machine_arn(own)
                    .send()
                    .await;
            }
        }
        if region == self.region {
            for (short, arn) in &adopted {
                self.front_door_machines_insert(short, arn);
            }
        }
        self.adopted
            .lock()
            .expect("adopted")
            .insert(region, adopted);
        Ok(())
    }

    fn front_door_machines_insert(&self, short: &str, arn: &str) {
        self.state_machines
            .lock()
            .expect("machines")
            .insert(short.to_string(), arn.to_string());
    }

    /// A clonable handle for background work.
    pub fn handle(&self) -> StackHandle {
        StackHandle {
            front: self.front_door.handle(),
            moto_port: self.moto_port,
            regions: self.regions(),
        }
    }

    /// Every region the stack deploys.
    pub fn regions(&self) -> Vec<String> {
        regions_with(&self.region)
    }

    /// The ARN a state machine deployed under `name` has (or will have) on this stack: the
    /// deployed template's, once one is adopted.
    pub fn arn_of(&self, name: &str) -> String {
        self.arn_in(&self.region, name)
    }

    /// The ARN of state machine `name` in `region`.
    pub fn arn_in(&self, region: &str, name: &str) -> String {
        self.adopted
            .lock()
            .expect("adopted")
            .get(region)
            .and_then(|m| m.get(name).cloned())
            .unwrap_or_else(|| crate::aws::definitions::local_state_machine_arn(region, name))
    }

    /// SDK configuration for `region` through the front door (what a client in or of that
    /// region uses; refused while the region is dark).
    pub fn sdk_config_in(&self, region: &str) -> SdkConfig {
        hapilot_adapters::sdk::local(&self.endpoint_url(), region)
    }

    /// SDK configuration for `region` straight to moto, past the front door: AWS's own
    /// machinery (Route53's health checkers and resolvers, CloudWatch's alarm evaluation) and
    /// the drill's observations use it, so they are neither refused nor counted.
    pub fn observer_config(&self, region: &str) -> SdkConfig {
        self.handle().observer_config(region)
    }

    /// Blacks `region` out: every request signed for it is refused (and for us-east-1 also
    /// Route53's control plane, which is signed for us-east-1).
    pub fn black_out(&self, region: &str) {
        self.front_door.set_dark(region, true);
    }

    /// Ends a blackout.
    pub fn revive(&self, region: &str) {
        self.front_door.set_dark(region, false);
    }

    /// Whether `region` is dark.
    pub fn is_dark(&self, region: &str) -> bool {
        self.front_door.is_dark(region)
    }

    /// Requests refused because their region was dark: (region, service) -> count.
    pub fn refused_calls(&self) -> BTreeMap<(String, String), u64> {
        self.front_door.refused_calls()
    }

    /// Requests served, by (region, service).
    pub fn served_calls(&self) -> BTreeMap<(String, String), u64> {
        self.front_door.served_calls()
    }

    /// Runs `region`'s `function` with `event` as EventBridge or Scheduler would (in process);
    /// `None` when the region is dark (its EventBridge and Scheduler are down with it).
    pub async fn deliver(
        &self,
        region: &str,
        function: &str,
        event: serde_json::Value,
    ) -> Option<Result<serde_json::Value, hapilot_functions::FunctionError>> {
        self.handle().deliver(region, function, event).await
    }

    /// The endpoint every AWS client uses: `http://127.0.0.1:<port>`.
    pub fn endpoint_url(&self) -> String {
        self.front_door.endpoint_url()
    }

    /// The region the stack plays.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The faults armed in this stack: AWS calls through the front door, and the simulated
    /// Kubernetes APIs and Patroni members of a deployment built on it.
    pub fn faults(&self) -> crate::aws::faults::Faults {
        self.front_door.faults()
    }

    /// SDK configuration pointing at this stack.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.sdk_config
    }

    /// Deployed state machines of the stack's region: name -> ARN.
    pub fn state_machines(&self) -> BTreeMap<String, String> {
        self.state_machines.lock().expect("machines").clone()
    }

    /// The ARN of the deployed state machine `name`.
    pub fn state_machine_arn(&self, name: &str) -> Option<String> {
        self.state_machines
            .lock()
            .expect("machines")
            .get(name)
            .cloned()
    }

    /// moto's process id.
    pub fn moto_pid(&self) -> Option<u32> {
        self.moto.pid()
    }

    /// moto's log file.
    pub fn moto_log(&self) -> PathBuf {
        self.moto.log().to_path_buf()
    }

    /// The shell lines a user evaluates to point the AWS CLI and SDKs at this stack.
    pub fn env_lines(&self) -> Vec<String> {
        vec![
            format!("export AWS_ENDPOINT_URL={}", self.endpoint_url()),
            format!("export AWS_REGION={}", self.region),
            format!("export AWS_DEFAULT_REGION={}", self.region),
            "export AWS_ACCESS_KEY_ID=hapilot-local".to_string(),
            "export AWS_SECRET_ACCESS_KEY=hapilot-local".to_string(),
        ]
    }

    /// Stops moto (waiting for it) and the front door.
    pub async fn shutdown(self) {
        let LocalStack {
            front_door, moto, ..
        } = self;
        drop(front_door);
        moto.stop().await;
    }
}

/// A clonable handle on a running stack for background work (the data plane's loop).
#[derive(Clone)]
pub struct StackHandle {
    front: crate::aws::front_door::FrontDoorHandle,
    moto_port: u16,
    regions: Vec<String>,
}

impl StackHandle {
    /// See [`LocalStack::observer_config`].
    pub fn observer_config(&self, region: &str) -> SdkConfig {
        hapilot_adapters::sdk::local(&format!("http://127.0.0.1:{}", self.moto_port), region)
    }

    /// Whether `region` is dark.
    pub fn is_dark(&self, region: &str) -> bool {
        self.front.is_dark(region)
    }

    /// Every region.
    pub fn regions(&self) -> Vec<String> {
        self.regions.clone()
    }

    /// See [`LocalStack::deliver`].
    pub async fn deliver(
        &self,
        region: &str,
        function: &str,
        event: serde_json::Value,
    ) -> Option<Result<serde_json::Value, hapilot_functions::FunctionError>> {
        if self.is_dark(region) {
            return None;
        }
        let handler = self.front.handler(region, function)?;
        Some(handler(event).await)
    }
}

/// [`REGIONS`], with `region` among them.
fn regions_with(region: &str) -> Vec<String> {
    let mut regions: Vec<String> = REGIONS.iter().map(|r| r.to_string()).collect();
    if !regions.iter().any(|r| r == region) {
        regions.push(region.to_string());
    }
    regions
}

fn build_registry(
    sdk_config: &SdkConfig,
    settings: Settings,
    extra: &[(String, Handler)],
) -> Result<FunctionRegistry, LocalError> {
    let mut adapters = Adapters::new(sdk_config, settings)
        .map_err(|e| LocalError::io("building the function adapters")(std::io::Error::other(e)))?;
    // The template's functions write their metrics as embedded-metric-format log lines
    // (HAPILOT_METRICS=emf), which CloudWatch Logs turns into metrics of the function's region.
    // The local host plays that step by putting the same values there directly.
    adapters.metrics = hapilot_adapters::monitoring::MetricSink::Api(
        hapilot_adapters::monitoring::CloudWatch::from_sdk(sdk_config),
    );
    let mut registry = FunctionRegistry::new(adapters);
    for (name, handler) in extra {
        let handler = handler.clone();
        registry.insert(name, move |event| handler(event));
    }
    Ok(registry)
}
