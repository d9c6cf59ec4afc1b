//! The origin pool: one slot per instance (its port and cgroup fixed for the slot's life,
//! its process coming and going), grown and shrunk behind nginx without dropping a
//! request, and the faults the study injects into it.

use std::process::Command;

use super::{Database, MAX_INSTANCES, Stack, StackError, server_lifecycle};
use crate::cgroup::{Cgroup, Limits};
use crate::server::{ChildServer, ServerDir};

/// An origin instance's slot: its port and cgroup are fixed, the process comes and goes.
pub(super) struct InstanceSlot {
    pub(super) port: u16,
    /// Not running after `kill_instance` until `restart_instance`.
    pub(super) server: ChildServer,
    /// Declared after the server so the process is stopped before the group is removed.
    pub(super) cgroup: Option<Cgroup>,
}

impl Stack {
    /// Grows or shrinks the pool to `count` instances without dropping a request: new
    /// instances join nginx only once ready; leaving ones are taken out of nginx first,
    /// then stopped after nginx's old workers have finished with them.
    pub async fn scale_to(&mut self, count: usize) -> Result<(), StackError> {
        if !(1..=MAX_INSTANCES).contains(&count) {
            return Err(StackError::InstanceCount(count));
        }
        let current = self.slots.len();
        if count > current {
            self.progress(&format!("scaling {current} -> {count}"));
            for index in current + 1..=count {
                self.start_instance(index)?;
            }
            for index in current + 1..=count {
                self.wait_instance_ready(index).await?;
            }
            self.reload_nginx().await?;
        } else if count < current {
            self.progress(&format!("scaling {current} -> {count}"));
            let leaving = self.slots.split_off(count);
            // Returns once new workers serve without the leaving instances and the old
            // ones are gone or only finishing what they had; an instance stops
            // gracefully, so what an old worker has already sent it is answered.
            self.reload_nginx().await?;
            for mut slot in leaving {
                slot.server.stop().await;
            }
        }
        Ok(())
    }

    /// SIGKILL one instance (numbered from 1), as a crash would; it stays in nginx's pool,
    /// whose passive health check and retries take over.
    pub fn kill_instance(&mut self, index: usize) -> Result<(), StackError> {
        self.slot_mut(index)?.server.kill();
        self.progress(&format!("killed instance {index}"));
        Ok(())
    }

    /// Starts an instance again on its port (stopping it first if it runs) and waits until ready.
    pub async fn restart_instance(&mut self, index: usize) -> Result<(), StackError> {
        self.restart_instances(&[index]).await
    }

    /// Starts these instances again at once (each stopped first if it runs) and waits until
    /// every one is ready: a pool brought back after a mass failure recovers in one
    /// instance's start-up time, not in the sum of them. Each keeps its slot's cgroup:
    /// a group made anew would share its directory with the one it replaces, whose
    /// removal (retried while a process is inside) would wait on the new process.
    pub async fn restart_instances(&mut self, indices: &[usize]) -> Result<(), StackError> {
        for &index in indices {
            let command = self.instance_command(index);
            let slot = self.slot_mut(index)?;
            slot.server.stop().await;
            let pid = spawn_into(slot, index, command)?;
            self.progress_started(index, pid);
        }
        for &index in indices {
            self.wait_instance_ready(index).await?;
            self.progress(&format!("instance {index} restarted"));
        }
        Ok(())
    }

    /// A new slot for instance `index`: its cgroup under the stack's limits, and its
    /// process started in it. The slot joins the pool only once its process runs in
    /// its group; on an error it is dropped, its process stopped and its group removed.
    pub(super) fn start_instance(&mut self, index: usize) -> Result<(), StackError> {
        debug_assert_eq!(index, self.slots.len() + 1, "slots are added in order");
        let port = self.config.ports.instances[index - 1];
        let name = format!("origin-{index}");
        let cgroup = match &self.hierarchy {
            Some(hierarchy) => {
                let limits = Limits {
                    cpu: self.config.cpu_per_instance,
                    cpu_period: self.config.cpu_period,
                    memory_bytes: self.config.memory_per_instance,
                };
                // The nginx port tells apart two stacks of one process (the study runs a
                // Cassandra stack beside its PostgreSQL one).
                let group_name = format!(
                    "stack-{}-{}-{name}",
                    std::process::id(),
                    self.config.ports.nginx
                );
                Some(
                    Cgroup::create(hierarchy, &group_name, limits)
                        .map_err(|source| StackError::Cgroup { index, source })?,
                )
            }
            None => None,
        };
        let dir = ServerDir::given(&self.run_dir)?;
        let mut slot = InstanceSlot {
            port,
            server: ChildServer::new(&name, dir, &format!("{name}.log"), server_lifecycle()),
            cgroup,
        };
        let pid = spawn_into(&mut slot, index, self.instance_command(index))?;
        self.slots.push(slot);
        self.progress_started(index, pid);
        Ok(())
    }

    fn progress_started(&self, index: usize, pid: u32) {
        let port = self.config.ports.instances[index - 1];
        self.progress(&format!(
            "started origin-{index} on port {port} (pid {pid})"
        ));
    }

    /// The command line of instance `index`.
    fn instance_command(&self, index: usize) -> Command {
        let port = self.config.ports.instances[index - 1];
        let mut command = Command::new(&self.origin_bin);
        command
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(self.database.iter().flat_map(Database::origin_args))
            .arg("--jwt-secret")
            .arg(&self.config.jwt_secret)
            .arg("--worker-threads")
            .arg(self.config.worker_threads.to_string())
            .arg("--db-pool-size")
            .arg(self.config.db_pool_size.to_string())
            .env("RUST_LOG", "warn");
        if let Some(redis) = &self.redis {
            command.arg("--redis-url").arg(redis.url());
        }
        command
    }

    pub(super) async fn wait_instance_ready(&mut self, index: usize) -> Result<(), StackError> {
        let slot = self.slot_mut(index)?;
        let url = format!("http://127.0.0.1:{}/readyz", slot.port);
        slot.server.wait_ready_http(&url).await?;
        Ok(())
    }

    pub(super) fn pool_ports(&self) -> Vec<u16> {
        self.slots.iter().map(|slot| slot.port).collect()
    }

    pub(super) fn slot_mut(&mut self, index: usize) -> Result<&mut InstanceSlot, StackError> {
        let count = self.slots.len();
        index
            .checked_sub(1)
            .and_then(|position| self.slots.get_mut(position))
            .ok_or(StackError::NoSuchInstance { index, count })
    }
}

/// Starts instance `index`'s process in `slot` (which runs none) and moves it into the
/// slot's cgroup before it takes traffic; a process that cannot be moved is killed, so
/// none runs without its limits. Returns its pid.
fn spawn_into(slot: &mut InstanceSlot, index: usize, command: Command) -> Result<u32, StackError> {
    slot.server.spawn(command)?;
    let pid = slot.server.pid().unwrap_or_default();
    if let Some(group) = &slot.cgroup
        // Writing the pid moves every thread.
        && let Err(source) = group.add_process(pid)
    {
        slot.server.kill();
        return Err(StackError::Cgroup { index, source });
    }
    Ok(pid)
}
