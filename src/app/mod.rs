pub mod server { 
 use crate::hooks::*; use crate::platform::Real; use crate::transport::*;
 pub struct ConnApp; 
 impl ServerApp<Real> for ConnApp { type Shared = (); type Event = ();
  fn new_conn(_: &mut ()) -> Self { ConnApp }
  fn on_established(&mut self, _: &mut quiche::Connection, _: &mut (), _: ConnRef) {}
  fn on_input(&mut self, _: &mut quiche::Connection, _: &mut (), _: ConnRef) {}
  fn is_busy(&self) -> bool { false }
  fn on_shutdown(&mut self, _: &mut quiche::Connection) {}
  fn close_code(&self) -> (bool, u64) { (true, 0) }
  fn on_closed(&mut self, _: &mut (), _: &ConnStats, _: &CloseInfo, _: ConnRef) {}
  fn next_event(_: &mut ()) -> Option<()> { None }
  unsafe fn deliver(_: ()) {}
 }
}
pub mod client {
 use crate::hooks::*; use crate::platform::Real; use crate::transport::*;
 pub struct ClientRequests;
 impl ClientApp<Real> for ClientRequests { type Event = ();
  fn on_established(&mut self, _: &mut quiche::Connection) {}
  fn on_input(&mut self, _: &mut quiche::Connection) {}
  fn is_done(&self) -> bool { false }
  fn on_closed(&mut self, _: &ConnStats, _: &CloseInfo) {}
  fn next_event(&mut self) -> Option<()> { None }
  unsafe fn deliver(_: ()) {}
 }
}
