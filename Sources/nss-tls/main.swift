print("nss-tls")
