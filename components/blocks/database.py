"""A service's databases and its user with grants, on the cloud's MariaDB server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence
from urllib.parse import quote

import pulumi

from ..providers.mariadb import Database
from .steps import once_done


@dataclass(frozen=True)
class DatabaseServer:
    """What services need of MariaDB: where to make databases, and the name clients connect to."""

    connection: pulumi.Output[dict]  # the controller's; resolves once MariaDB answers
    socket: str
    address: str


def service_database(name: str, server: DatabaseServer, databases: Sequence[str], user: str,
                     password: pulumi.Input[str], opts: Optional[pulumi.ResourceOptions] = None
                     ) -> tuple[Database, dict[str, pulumi.Output[str]]]:
    """The databases and the user granted all on them from 'localhost' and '%' (as the seeds do), and each
    database's SQLAlchemy URL (secret), which resolves only once the grants exist."""
    db = Database(name, connection=server.connection, socket=server.socket, databases=list(databases), user=user,
                  password=password, opts=opts)
    urls = {
        d: pulumi.Output.secret(
            once_done(password, db).apply(
                lambda v, d=d: f"mysql+pymysql://{user}:{quote(v, safe='')}@{server.address}/{d}"
            )
        )
        for d in databases
    }
    return db, urls
