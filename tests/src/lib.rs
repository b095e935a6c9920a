//! Integration-test support: shared job definitions used by the test binaries and tests.
