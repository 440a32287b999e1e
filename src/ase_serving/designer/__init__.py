"""The API design page (``asectl api web``): design ``ai_api.yml`` in a browser.

- :mod:`.design`: the page's model (tables of rows) <-> ApiSchema YAML; a service schema -> a design;
- :mod:`.checks`: what ``asectl api create`` says of a design, placed on the page's fields;
- :mod:`.remote`: push, list and open schemas of the cluster, try a call through its gateway;
- :mod:`.server`: the Starlette app (the token and origin guard, the JSON API, the assets);
- :mod:`.run`: serving it with uvicorn until Ctrl-C;
- ``static/``: the page (plain HTML, CSS and JavaScript modules; nothing from the network).

The page implements no check of its own: every problem it shows is one the schema toolchain
reported, in its words.
"""
