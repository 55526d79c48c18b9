"""Network: policy-routing files for two gateways on one host, rendered and staged.

A model (respin.stages.network.lib.model) is rendered by one backend per network stack
into an in-memory file map, then staged into an image root, a netfiles tree
for the initrd stages, or a noarch RPM.
"""
