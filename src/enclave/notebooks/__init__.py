"""Notebooks: spawner options, JupyterHub profiles, capacity planning and the WebDAV File Workspace.

Seed §5 (AA1: the user picks an image and how much CPU and RAM, then spawns), §6 (the File Workspace
is a subdirectory of the home area, exposed over WebDAV) and §13 (per-user bounds, node storage).
"""
