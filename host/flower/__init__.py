"""tinyfed over Flower: gateways that own boards join a Flower federation; a
ServerApp runs tinyfed's rounds and SecAgg+ server with every board as its
own participant (relay.py, gateway.py, client_app.py, router.py,
participant.py, server_app.py), and Flower's simulation engine runs virtual
devices (simulation.py).  Importing this package does not import Flower."""
