// Loaded by every ava worker (package.json ava.nodeArguments). Under c8 the
// worker itself reports coverage, but the processes it starts (the built CLI,
// PostgreSQL's archive_command, emulators) must not: thousands of them would
// each write a coverage file of the whole bundle.
delete process.env.NODE_V8_COVERAGE;
