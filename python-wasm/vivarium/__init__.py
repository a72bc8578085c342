"""What Vivarium gives an action besides its records: ``vivarium.http``, the outbound HTTP
path that ``http.client``, ``urllib.request`` and ``requests`` use unchanged, and
``vivarium.state``, values that outlive the call.

The package is loaded into the interpreter's snapshot; an action imports it (or not) like any
module, and gets a fresh copy with every call.
"""
