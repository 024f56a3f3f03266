"""The replicated part of horae: the Raft state machine, membership and inter-node RPC."""
