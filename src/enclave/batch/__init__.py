"""HTCondor pools by ClassAd (seed §7, §7.1): policy, anti-spoofing, rendered config, live adapter.

``policy`` is pure ClassAd logic built and evaluated with classad2; ``render`` writes HTCondor config;
``explain`` analyses a submit description; ``live`` talks to a real pool through the htcondor2 bindings.
"""
