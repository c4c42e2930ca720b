//! One local stack: moto + the front door + deployed state machines, on free loopback ports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_config::SdkConfig;
use hapilot_functions::config::Settings;
use hapilot_functions::registry::{Adapters, FunctionRegistry, Handler};
use tokio::net::TcpListener;

use super::deploy::{definitions_in, deploy, local_substitutions};
use super::front_door::FrontDoor;
use super::moto::{MotoInstall, MotoServer};
use super::{DEFAULT_REGION, free_port, project_root};
use crate::HapilotError;

/// How to start a local stack. [`StackOptions::default`] gives the repository's own setup.
#[derive(Clone)]
pub struct StackOptions {
    /// Port of the front door (the endpoint users talk to); `None` picks a free one.
    pub port: Option<u16>,
    /// The region the stack plays.
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
            settings: Settings::with_defaults(),
            extra_functions: Vec::new(),
        }
    }
}

/// A running local stack. Dropping it stops moto and the front door.
pub struct LocalStack {
    front_door: FrontDoor,
    extra_functions: Vec<(String, Handler)>,
    moto: MotoServer,
    region: String,
    sdk_config: SdkConfig,
    state_machines: BTreeMap<String, String>,
}

impl LocalStack {
    /// Installs moto if needed, starts moto and the front door, deploys the definitions.
    /// `progress` hears a line for each slow step.
    pub async fn start(
        options: StackOptions,
        progress: impl Fn(&str) + Send + 'static,
    ) -> Result<Self, HapilotError> {
        // The port first: a taken port is reported at once, not after a minute of installing.
        let listener = match options.port {
            Some(port) => TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    HapilotError::PortInUse { port }
                } else {
                    HapilotError::Io {
                        context: format!("binding 127.0.0.1:{port}"),
                        source: e,
                    }
                }
            })?,
            None => TcpListener::bind(("127.0.0.1", 0))
                .await
                .map_err(HapilotError::io("binding a free port"))?,
        };
        let install = MotoInstall::at(&options.venv);
        let python = options.python.clone();
        let install_for_task = install.clone();
        tokio::task::spawn_blocking(move || install_for_task.ensure(&python, progress))
            .await
            .map_err(|e| HapilotError::io("installing moto")(std::io::Error::other(e)))??;

        let front_door_port = listener
            .local_addr()
            .map_err(HapilotError::io("reading the bound port"))?
            .port();
        let moto_port = free_port().map_err(HapilotError::io("finding a free port for moto"))?;
        let moto = MotoServer::start(
            &install.moto_server(),
            moto_port,
            front_door_port,
            &options.log_dir,
            options.moto_start_timeout,
        )
        .await?;

        let endpoint = format!("http://127.0.0.1:{front_door_port}");
        let sdk_config = hapilot_aws::sdk::local(&endpoint, &options.region);
        let registry = build_registry(&sdk_config, options.settings, &options.extra_functions)?;
        let front_door = FrontDoor::start(
            listener,
            registry,
            std::net::SocketAddr::from(([127, 0, 0, 1], moto_port)),
            &options.region,
        );
        let sfn = aws_sdk_sfn::Client::new(&sdk_config);
        let state_machines = deploy(
            &sfn,
            &options.definitions,
            &local_substitutions(&options.region),
        )
        .await?;
        Ok(Self {
            front_door,
            extra_functions: options.extra_functions,
            moto,
            region: options.region,
            sdk_config,
            state_machines,
        })
    }

    /// Gives every function a new deployment configuration (in AWS: new environment variables),
    /// from the next invoke on.
    pub fn configure(&self, settings: Settings) -> Result<(), HapilotError> {
        let registry = build_registry(&self.sdk_config, settings, &self.extra_functions)?;
        self.front_door.replace_registry(registry);
        Ok(())
    }

    /// The ARN a state machine deployed under `name` has (or will have) on this stack.
    pub fn arn_of(&self, name: &str) -> String {
        super::deploy::local_state_machine_arn(&self.region, name)
    }

    /// The endpoint every AWS client uses: `http://127.0.0.1:<port>`.
    pub fn endpoint_url(&self) -> String {
        self.front_door.endpoint_url()
    }

    /// The region the stack plays.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// SDK configuration pointing at this stack.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.sdk_config
    }

    /// Deployed state machines: name -> ARN.
    pub fn state_machines(&self) -> &BTreeMap<String, String> {
        &self.state_machines
    }

    /// The ARN of the deployed state machine `name`.
    pub fn state_machine_arn(&self, name: &str) -> Option<&str> {
        self.state_machines.get(name).map(String::as_str)
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

fn build_registry(
    sdk_config: &SdkConfig,
    settings: Settings,
    extra: &[(String, Handler)],
) -> Result<FunctionRegistry, HapilotError> {
    let adapters = Adapters::new(sdk_config, settings).map_err(|e| {
        HapilotError::io("building the function adapters")(std::io::Error::other(e))
    })?;
    let mut registry = FunctionRegistry::new(adapters);
    for (name, handler) in extra {
        let handler = handler.clone();
        registry.insert(name, move |event| handler(event));
    }
    Ok(registry)
}
