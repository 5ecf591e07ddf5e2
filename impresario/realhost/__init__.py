"""The one Thespian adapter of the real host.

Everything that knows more of Thespian than an actor's public API, or that starts,
joins or ends Thespian systems, lives here: the ports a kernel actor gets on a real host
(``ports``: the wall clock and ``IP:PORT`` addresses), systems and clients (``system``),
finding masters through a convention (``masters``), and the transport hardening
installed before any system starts (``hardening``).  The rest of ``impresario`` (the
command line, :class:`~impresario.cluster.LocalCluster`) uses these and never imports
Thespian itself; the simulator imitates the same surface (``sim/host.py``).
"""
