"""Word lists for generated totesys data (invented names; no real people or addresses)."""

FIRST_NAMES = (
    "Jeremie Deron Jeanette Ana Magdalena Korey Raphael Oswaldo Brody Jazmyn Meda Imani Stan Rigoberto "
    "Tom Jett Irving Tomasa Pierre Flavio Micheal Melba Jane Lucy Jean Myra Alexie Kaylah Orin Bryce "
    "Ernesto Georgette Providenci Daren Horacio Ruthe Noemy Izabella Macey Nora Cielo Axel Tremaine "
    "Sibyl Edward Kailey Patience Deshaun Tyra Shadburgh Briell Arne Wyatt Bobbie Myrl Beaulah Derek"
).split()

LAST_NAMES = (
    "Franey Beier Erdman Glover Zieme Kreiger Rippin Bergstrom Ratke Kuhn Cremin Walker Lehner VonRueden "
    "Gutkowski Parisian O'Keefe Moore Sauer Kulas Toy Runolfsdottir Sanford Hane Wiza Kovacek Fahey "
    "Leannon Predovic Morar Armstrong Herzog Rogahn Upton Ernestine Durgan Bernier Koch Goodwin Ullrich "
    "Pacocha Breitenberg Heathcote Klein Torphy Grady Leuschke Cole Haskell Sincere Kihn Schaden Nitzsche"
).split()

STREET_SUFFIXES = (
    "Via Cliffs Fort Skyway Track Island Ways Common Garden Flat Mission Expressway Dale Trafficway "
    "Extension Drives Cliff Corner Landing Ridge Streets Spring Freeway Inlet Branch View Lock Heights "
    "Circles Turnpike Radial Glens Wall Bridge Pines"
).split()

CITY_PARTS = (
    "New Patience Aliso Lake Charles Olson Fort Kendra North Deshaun Suffolk Tyra Beaulah Corpus Price "
    "Shanahan Maggio East Bobbie South Wyatt Hackensack Arne West Brielle Pueblo Fresno Sayre Derek "
    "Torrance Arvel Napa Oakland Utica Bartell Myrl"
).split()
CITY_SUFFIXES = ("burgh", "side", "ville", "furt", "view", "port", "cester", "haven", "", "", "", "")

DISTRICTS = (
    "Avon", "Bedfordshire", "Buckinghamshire", "Berkshire", "Borders", "Cambridgeshire",
)

COMPANY_SUFFIXES = ("and Sons", "Inc", "LLC", "Group", "- Jones", "Ltd", "and Co", "Partners")

DEPARTMENTS = (
    # (name, location): the real organisation, including the source's "Leds" typo.
    ("Sales", "Manchester"),
    ("Purchasing", "Manchester"),
    ("Production", "Leeds"),
    ("Dispatch", "Leds"),
    ("Finance", "Manchester"),
    ("Facilities", "Manchester"),
    ("Communications", "Leeds"),
    ("HR", "Leeds"),
)

CURRENCY_CODES = ("GBP", "USD", "EUR")

DESIGN_NAMES = (
    "Steel Soft Granite Concrete Frozen Bronze Plastic Cotton Metal Fresh Wooden Rubber"
).split()

FILE_LOCATIONS = (
    "/net /usr/libexec /usr /etc /usr/ports /usr/share /etc/periodic /usr/local/src /opt/lib /selinux "
    "/home/user/dir /lost+found /etc/ppp /usr/libdata /etc/namedb /bin /private /System /Users /etc/mail "
    "/var/log /var/tmp /opt/sbin /boot/defaults /sys /usr/X11R6 /root /lib /opt /usr/lib /Library "
    "/var/yp /etc/defaults /Applications /sbin /dev /usr/obj /usr/src /var /boot /srv /var/mail /home/user"
).split()
