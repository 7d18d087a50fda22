//! The admin host: the runner's hands inside the simulation. The runner queues jobs (an
//! admin command, a Vault admin call) and steps the simulation until each one's answer
//! arrives or its bound passes.

use tokio::sync::mpsc;

use crate::runner::fabric::{Job, Stuck};

pub struct Driver {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Driver {
    /// Registers the admin host; it runs jobs one at a time, in order.
    pub fn install(sim: &mut turmoil::Sim<'_>) -> Driver {
        let (jobs, mut rx) = mpsc::unbounded_channel::<Job>();
        sim.client("admin", async move {
            while let Some(job) = rx.recv().await {
                job.await;
            }
            Ok(())
        });
        Driver { jobs }
    }

    pub fn submit(&self, job: Job) -> Result<(), Stuck> {
        self.jobs.send(job).map_err(|_| Stuck)
    }
}
