mod socket;
pub mod tls;

// aksara patch: `set_uds_connector` and `UdsConnector` are exported.
#[cfg(unix)]
pub use socket::{set_uds_connector, UdsConnector};
pub use socket::{
    connect_tcp, connect_uds, BufferedSocket, Socket, SocketIntoBox, WithSocket, WriteBuffer,
};
