//! GeoIP data: mmdb databases and CIDR maps compiled into prefix tables.
