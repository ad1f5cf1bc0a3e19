#pragma once

// Waiting for SIGTERM/SIGINT in a program with threads: block them in every thread (call
// block_stop_signals() before any thread starts), then wait for one with wait_for_stop_signal().
// Child processes get a clean signal mask from ci::run_process.

namespace ci::tools {

/// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and in the threads it starts later.
void block_stop_signals();

/// Waits for one of them; returns its number.
int wait_for_stop_signal();

} // namespace ci::tools
