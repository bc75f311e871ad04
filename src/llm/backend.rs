//! Choosing where in-process models run: burn's wgpu backend or its flex CPU backend.
//!
//! `auto` takes wgpu only when a hardware GPU adapter exists (a software adapter such as
//! Mesa's lavapipe is slower than flex on the same CPU), and flex otherwise; `wgpu` always
//! means wgpu, software adapters included. The choice and the adapter are reported, and the
//! backend name is part of the keys of stages that run a model (numerics differ).

use std::sync::Mutex;

use burn::tensor::{Device, DeviceKind};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::LlmError;

/// Where in-process models run.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// wgpu when a GPU adapter is present, otherwise flex.
    #[default]
    Auto,
    /// burn's wgpu backend (any GPU; Mesa's software Vulkan on CPU-only machines).
    Wgpu,
    /// burn's flex backend on the CPU.
    Flex,
}

/// The `--backend` / `backend:` choice.
pub type BackendChoice = Backend;

/// A backend that was chosen and initialised.
#[derive(Debug, Clone)]
pub struct ResolvedBackend {
    pub device: Device,
    /// `wgpu` or `flex`.
    pub name: &'static str,
    /// The wgpu adapter's name, when wgpu was chosen.
    pub adapter: Option<String>,
    /// Why this backend, for the message that reports the choice.
    pub reason: &'static str,
}

impl std::fmt::Display for ResolvedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)?;
        if let Some(adapter) = &self.adapter {
            write!(f, " on {adapter}")?;
        }
        write!(f, " ({})", self.reason)
    }
}

/// Initialises wgpu on an adapter of `kind`, returning the device and the adapter's name.
/// wgpu sets a device up once per process, so successes are remembered and handed out
/// again: two stages (or an `auto` and a `wgpu` choice) then share the one device.
fn init_wgpu(kind: DeviceKind) -> Result<(Device, String), String> {
    static OPENED: Mutex<Vec<(String, Device, String)>> = Mutex::new(Vec::new());
    let key = format!("{kind:?}");
    let mut opened = OPENED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, device, adapter)) = opened.iter().find(|(k, _, _)| *k == key) {
        return Ok((device.clone(), adapter.clone()));
    }
    let (device, setup) = Device::wgpu_options()
        .device_kind(kind)
        .init_with_setup()
        .map_err(|e| e.to_string())?;
    let info = setup.adapter.get_info();
    let adapter = format!("{} ({:?}, {:?})", info.name, info.device_type, info.backend);
    opened.push((key, device.clone(), adapter.clone()));
    Ok((device, adapter))
}

/// Resolves `choice` to an initialised backend.
pub fn resolve_backend(choice: BackendChoice) -> Result<ResolvedBackend, LlmError> {
    match choice {
        Backend::Flex => Ok(ResolvedBackend {
            device: Device::flex(),
            name: "flex",
            adapter: None,
            reason: "asked for",
        }),
        Backend::Wgpu => {
            // The default adapter is a GPU where there is one; a software one otherwise.
            let attempt = init_wgpu(DeviceKind::DefaultDevice)
                .or_else(|first| init_wgpu(DeviceKind::Cpu).map_err(|_| first));
            match attempt {
                Ok((device, adapter)) => Ok(ResolvedBackend {
                    device,
                    name: "wgpu",
                    adapter: Some(adapter),
                    reason: "asked for",
                }),
                Err(e) => Err(LlmError::NoAdapter(e)),
            }
        }
        Backend::Auto => {
            let flex = |reason| ResolvedBackend {
                device: Device::flex(),
                name: "flex",
                adapter: None,
                reason,
            };
            if Device::enumerate_physical().is_empty() {
                return Ok(flex(
                    "auto: no hardware GPU adapter; `--backend wgpu` uses a software one",
                ));
            }
            match init_wgpu(DeviceKind::DefaultDevice) {
                Ok((device, adapter)) => Ok(ResolvedBackend {
                    device,
                    name: "wgpu",
                    adapter: Some(adapter),
                    reason: "auto: a hardware GPU adapter is present",
                }),
                Err(_) => Ok(flex("auto: the GPU adapter could not be opened")),
            }
        }
    }
}
