//! Graceful shutdown by channels, as mini-redis does it: every connection task holds a
//! [`Shutdown`], which tells it when to close (a watch channel turning true) and, by being
//! dropped when the task ends, tells the server it is done (the last sender of an mpsc
//! channel closing). The server counts nothing: it waits for the channel to close.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

/// Held by each connection task for its whole life.
#[derive(Debug, Clone)]
pub struct Shutdown {
    closing: watch::Receiver<bool>,
    /// Never sent on: its drop is the message.
    _done: mpsc::Sender<()>,
}

impl Shutdown {
    /// Resolves when the bridge tells open connections to close.
    pub async fn closing(&mut self) {
        if self.closing.wait_for(|closing| *closing).await.is_err() {
            // The server is gone without saying so; the process is ending anyway.
            std::future::pending::<()>().await;
        }
    }
}

/// The server's side: hands out [`Shutdown`]s, then ends them.
#[derive(Debug)]
pub struct ShutdownController {
    close: watch::Sender<bool>,
    done_sender: mpsc::Sender<()>,
    done: mpsc::Receiver<()>,
}

/// How a shutdown went.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection ended within the grace period.
    InGrace,
    /// Connections were told to close when the grace period was over, and did.
    Closed,
    /// Some connections had not ended even after being told to close.
    TimedOut,
}

impl Default for ShutdownController {
    fn default() -> ShutdownController {
        ShutdownController::new()
    }
}

impl ShutdownController {
    pub fn new() -> ShutdownController {
        let (close, _) = watch::channel(false);
        let (done_sender, done) = mpsc::channel(1);
        ShutdownController {
            close,
            done_sender,
            done,
        }
    }

    /// A handle for one more connection task.
    pub fn handle(&self) -> Shutdown {
        Shutdown {
            closing: self.close.subscribe(),
            _done: self.done_sender.clone(),
        }
    }

    /// Lets connections run for `grace`, then tells them to close and gives them `close`
    /// more to do so. Returns once every [`Shutdown`] is dropped or the time is up.
    pub async fn finish(self, grace: Duration, close: Duration) -> Stopped {
        let ShutdownController {
            close: close_sender,
            done_sender,
            mut done,
        } = self;
        drop(done_sender);
        // recv() yields None once every Shutdown is dropped; nothing is ever sent.
        if tokio::time::timeout(grace, done.recv()).await.is_ok() {
            return Stopped::InGrace;
        }
        let _ = close_sender.send(true);
        match tokio::time::timeout(close, done.recv()).await {
            Ok(_) => Stopped::Closed,
            Err(_) => Stopped::TimedOut,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn finish_waits_for_every_handle_then_tells_the_rest_to_close() {
        let controller = ShutdownController::new();
        let quick = controller.handle();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(quick);
        });
        assert_eq!(
            controller
                .finish(Duration::from_secs(5), Duration::from_secs(1))
                .await,
            Stopped::InGrace
        );

        let controller = ShutdownController::new();
        let mut stubborn = controller.handle();
        tokio::spawn(async move {
            stubborn.closing().await;
            drop(stubborn);
        });
        assert_eq!(
            controller
                .finish(Duration::from_secs(5), Duration::from_secs(1))
                .await,
            Stopped::Closed
        );
    }
}
