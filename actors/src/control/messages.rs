//! What the control socket can ask of the rest of the worker.

use actix::Recipient;

use crate::supervisor::messages::{
    AddShare, CancelCode, CreateAccessCode, CreateShare, FileUrl, GetConfig, GetStatus, InjectFault, ListCodes,
    ListPeers, ListShares, ReadFile, RemoveShare, SetConfig, SetPaused, Shutdown,
};

/// The actors a control connection talks to, injected by the supervisor.
#[derive(Debug, Clone)]
pub struct ControlTargets {
    /// Daemon status.
    pub status: Recipient<GetStatus>,
    /// Pause and resume.
    pub pause: Recipient<SetPaused>,
    /// Clean stop.
    pub shutdown: Recipient<Shutdown>,
    /// `create_share`.
    pub create_share: Recipient<CreateShare>,
    /// `list_shares`.
    pub list_shares: Recipient<ListShares>,
    /// `remove_share`.
    pub remove_share: Recipient<RemoveShare>,
    /// `create_access_code`.
    pub create_access_code: Recipient<CreateAccessCode>,
    /// `add_share`.
    pub add_share: Recipient<AddShare>,
    /// `list_access_codes`.
    pub list_codes: Recipient<ListCodes>,
    /// `cancel_access_code`.
    pub cancel_code: Recipient<CancelCode>,
    /// `verify_backup`.
    pub verify_backup: Recipient<crate::supervisor::messages::VerifyBackup>,
    /// `export_keys`.
    pub export_keys: Recipient<crate::supervisor::messages::ExportKeys>,
    /// `confirm_deletes`.
    pub confirm_deletes: Recipient<crate::supervisor::messages::ConfirmDeletes>,
    /// `list_peers`.
    pub list_peers: Recipient<ListPeers>,
    /// `get_config`, `get_config_value`.
    pub get_config: Recipient<GetConfig>,
    /// `set_config`, `set_config_value`.
    pub set_config: Recipient<SetConfig>,
    /// `read_file`.
    pub read_file: Recipient<ReadFile>,
    /// `file_url`.
    pub file_url: Recipient<FileUrl>,
    /// `inject_fault`: only with `--danger-fault-injection` (otherwise the command is
    /// `not_understood`).
    pub inject_fault: Option<Recipient<InjectFault>>,
}
