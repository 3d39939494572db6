//! What to run and where: scenarios (`scenario`), device profiles (`device`) and where named
//! inputs and goldens come from (`checkout`). Raw YAML types are validated here into typed
//! domain values before any device is touched.

pub mod checkout;
pub mod device;
pub mod masks;
pub mod scenario;
pub mod tensor_inputs;

pub use device::DeviceProfile;
pub use scenario::{Scenario, ThrottleConfig};
