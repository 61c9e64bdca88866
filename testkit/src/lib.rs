//! Integration-test support: real podsim and podwranglerd processes that clean up after themselves.
