"""Entry modules of the TCF enclave applications (built into bundles by heddle.tcf.bundle).

They run only inside an enclave, after the bundle installed the TCF modules they use.
"""
